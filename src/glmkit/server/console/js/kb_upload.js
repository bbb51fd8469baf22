/* 知识库 tab: uploading documents (multipart POST /v1/kb/{name}/documents) from the file picker or a drop,
 * and the per-file report. */
import { apiFetch, describeError } from "./api.js";
import { $, el, toast } from "./dom.js";
import { KB_STATUS, KB_STATUS_ICON, kb, kbPath } from "./kb_state.js";

var afterUpload = function () {}; // set by bindDropZone: refresh the list and the documents

function setUploadStatus(text, kind) {
  var s = $("kb-upload-status");
  s.textContent = text;
  s.className = "kb-status" + (kind ? " " + kind : "");
}

function updateUploadUi() {
  $("kb-upload-input").disabled = kb.uploading;
  $("kb-drop").classList.toggle("busy", kb.uploading);
}

function uploadFiles(fileList) {
  var files = Array.prototype.slice.call(fileList || []);
  if (!files.length || !kb.current) return;
  if (kb.uploading) {
    toast("上一批文件还在处理中");
    return;
  }
  var name = kb.current;
  var form = new FormData();
  files.forEach(function (f) {
    form.append("files", f, f.name);
  });
  form.append("tags", $("kb-upload-tags").value.trim());
  kb.uploading = true;
  updateUploadUi();
  $("kb-upload-results").textContent = "";
  setUploadStatus("正在上传并建立索引：" + files.length + " 个文件…", "busy");
  apiFetch(kbPath(name, "/documents"), { method: "POST", body: form })
    .then(function (resp) {
      return resp.json();
    })
    .then(
      function (data) {
        if (name === kb.current) renderUploadResults(data || {});
        else toast("已上传到知识库 " + name);
      },
      function (err) {
        if (name === kb.current) setUploadStatus("上传失败：" + describeError(err), "err");
        else toast("上传到 " + name + " 失败");
      }
    )
    .then(function () {
      kb.uploading = false;
      $("kb-upload-input").value = ""; // the same file can be chosen again
      updateUploadUi();
      afterUpload(name);
    });
}

function renderUploadResults(data) {
  var files = Array.isArray(data.files) ? data.files : [];
  var count = {};
  files.forEach(function (f) {
    count[f.status] = (count[f.status] || 0) + 1;
  });
  var parts = [];
  ["added", "replaced", "unchanged", "failed"].forEach(function (s) {
    if (count[s]) parts.push(count[s] + " 个" + KB_STATUS[s]);
  });
  var summary = files.length + " 个文件：" + (parts.join("，") || "无结果") + " · 新增 " + (data.chunks || 0) + " 个片段";
  if (data.seconds != null) summary += " · 用时 " + data.seconds + " 秒";
  setUploadStatus(summary, count.failed ? "warn" : "ok");
  var ul = $("kb-upload-results");
  ul.textContent = "";
  files.forEach(function (f) {
    var status = KB_STATUS[f.status] ? f.status : "failed";
    var li = el("li", { className: "upload-result is-" + status, "data-source": f.source || "", "data-status": status });
    var head = el("div", { className: "upload-head" });
    head.appendChild(el("span", { className: "upload-icon", "aria-hidden": "true" }, KB_STATUS_ICON[status]));
    head.appendChild(el("span", { className: "upload-name", title: f.source || "" }, f.source || "（无文件名）"));
    var label = KB_STATUS[status];
    if ((status === "added" || status === "replaced") && f.chunks != null) label += " · " + f.chunks + " 个片段";
    head.appendChild(el("span", { className: "upload-label" }, label));
    li.appendChild(head);
    if (status === "failed") li.appendChild(el("div", { className: "upload-error", role: "alert" }, f.error || "处理失败（没有错误信息）"));
    ul.appendChild(li);
  });
}

/** The drop zone and the file picker; `onUploaded(name)` runs after each upload to knowledge base `name`. */
export function bindDropZone(onUploaded) {
  afterUpload = onUploaded;
  var zone = $("kb-drop");
  var depth = 0;
  function hasFiles(ev) {
    var types = ev.dataTransfer && ev.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") >= 0;
  }
  zone.addEventListener("dragenter", function (ev) {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth++;
    zone.classList.add("dragover");
  });
  zone.addEventListener("dragover", function (ev) {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = kb.uploading ? "none" : "copy";
  });
  zone.addEventListener("dragleave", function () {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("dragover");
  });
  zone.addEventListener("drop", function (ev) {
    ev.preventDefault();
    ev.stopPropagation();
    depth = 0;
    zone.classList.remove("dragover");
    uploadFiles(ev.dataTransfer && ev.dataTransfer.files);
  });
  // a file dropped next to the zone must not make the browser navigate away to it
  var panel = $("panel-kb");
  ["dragover", "drop"].forEach(function (type) {
    panel.addEventListener(type, function (ev) {
      if (hasFiles(ev)) ev.preventDefault();
    });
  });
  $("kb-upload-input").addEventListener("change", function (ev) {
    uploadFiles(ev.target.files);
  });
}
