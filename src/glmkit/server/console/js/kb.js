/* 知识库 tab: the list of knowledge bases (create / delete), the selected one's head and documents, and the
 * tab's wiring. Upload is in kb_upload.js, search and ask in kb_ask.js. */
import { apiJson, describeError } from "./api.js";
import { $, el, formatBytes, formatTime, showError, toast } from "./dom.js";
import { bindAsk, resetAnswers, updateAskButtons } from "./kb_ask.js";
import { KB_NAME_RE, currentKb, kb, kbCounts, kbPath } from "./kb_state.js";
import { bindDropZone } from "./kb_upload.js";
import { STORE, loadString, saveString } from "./store.js";

// ---- knowledge-base list ----
function loadKbs(prefer) {
  var seq = ++kb.listSeq;
  return apiJson("GET", "/v1/kb").then(
    function (data) {
      if (seq !== kb.listSeq) return;
      kb.list = ((data && data.data) || []).filter(function (r) {
        return r && typeof r.name === "string";
      });
      kb.loaded = true;
      kb.listError = "";
      var names = kb.list.map(function (r) {
        return r.name;
      });
      var want = [prefer, kb.current, loadString(STORE.kbCurrent), names[0]].filter(function (n) {
        return n && names.indexOf(n) >= 0;
      })[0];
      if ((want || null) !== kb.current) selectKb(want || null);
      else {
        renderKbList();
        renderKbHead();
      }
    },
    function (err) {
      if (seq !== kb.listSeq) return;
      kb.listError = describeError(err);
      renderKbList();
    }
  );
}

function renderKbList() {
  var list = $("kb-list");
  list.textContent = "";
  if (kb.listError) {
    list.appendChild(el("li", { className: "kb-list-note err" }, "无法获取知识库列表：" + kb.listError));
    return;
  }
  if (!kb.loaded) {
    list.appendChild(el("li", { className: "kb-list-note" }, "正在加载…"));
    return;
  }
  if (!kb.list.length) {
    list.appendChild(el("li", { className: "kb-list-note" }, "还没有知识库，在上方创建一个。"));
    return;
  }
  kb.list.forEach(function (r) {
    var li = el("li", { className: "kb-item" + (r.name === kb.current ? " active" : ""), "data-name": r.name });
    var open = el("button", { type: "button", className: "kb-open", title: r.description || r.name });
    var top = el("span", { className: "kb-item-name" }, r.name);
    if (r.private) top.appendChild(el("span", { className: "tag tag-private" }, "私有"));
    open.appendChild(top);
    open.appendChild(el("span", { className: "kb-item-meta" }, kbCounts(r)));
    open.addEventListener("click", function () {
      selectKb(r.name);
    });
    var del = el("button", { type: "button", className: "conv-delete", title: "删除知识库", "aria-label": "删除知识库 " + r.name }, "×");
    del.addEventListener("click", function (ev) {
      ev.stopPropagation();
      deleteKb(r.name);
    });
    li.appendChild(open);
    li.appendChild(del);
    list.appendChild(li);
  });
}

function renderKbHead() {
  var r = currentKb();
  $("kb-empty").hidden = !!r;
  $("kb-detail").hidden = !r;
  if (!r) return;
  $("kb-title").textContent = r.name;
  var meta = [kbCounts(r)];
  if (r.embedder) meta.push("向量模型 " + r.embedder);
  if (r.created) meta.push("创建于 " + formatTime(r.created));
  if (r.private) meta.push("私有");
  $("kb-meta").textContent = meta.join(" · ");
  $("kb-desc").textContent = r.description || "";
  $("kb-desc").hidden = !r.description;
}

/** Clear everything shown for the previous knowledge base (and stop its answer). */
function resetKbPanels() {
  kb.docs = [];
  kb.docsError = "";
  kb.docsSeq++;
  $("kb-upload-results").textContent = "";
  $("kb-upload-status").textContent = "";
  $("kb-upload-status").className = "kb-status";
  showError("kb-docs-error", "");
  resetAnswers();
}

function selectKb(name) {
  if ((name || null) !== kb.current) {
    kb.current = name || null;
    saveString(STORE.kbCurrent, kb.current || "");
    resetKbPanels();
  }
  renderKbList();
  renderKbHead();
  if (kb.current) loadDocs();
}

function createKb() {
  var nameInput = $("kb-new-name");
  var name = nameInput.value.trim();
  showError("kb-side-error", "");
  if (!name) {
    nameInput.focus();
    return;
  }
  if (!KB_NAME_RE.test(name) || name[0] === ".") {
    showError("kb-side-error", "名称只能包含字母、数字、_ - .（1–64 个字符，不能以 . 开头）");
    nameInput.focus();
    return;
  }
  var btn = $("kb-create");
  btn.disabled = true;
  apiJson("POST", "/v1/kb", { name: name, description: $("kb-new-desc").value.trim(), private: $("kb-new-private").checked })
    .then(
      function (rec) {
        nameInput.value = "";
        $("kb-new-desc").value = "";
        $("kb-new-private").checked = false;
        toast("已创建知识库 " + ((rec && rec.name) || name));
        return loadKbs((rec && rec.name) || name);
      },
      function (err) {
        showError("kb-side-error", err.status === 409 ? "已存在同名知识库：" + name : "创建失败：" + describeError(err));
      }
    )
    .then(function () {
      btn.disabled = false;
    });
}

function deleteKb(name) {
  var r = null;
  kb.list.forEach(function (x) {
    if (x.name === name) r = x;
  });
  var what = r && r.documents ? "其中的 " + r.documents + " 个文档" : "其中的全部内容";
  if (!window.confirm("删除知识库“" + name + "”？" + what + "会一并删除，且无法恢复。")) return;
  showError("kb-side-error", "");
  apiJson("DELETE", kbPath(name)).then(
    function () {
      toast("已删除知识库 " + name);
      if (kb.current === name) selectKb(null);
      return loadKbs();
    },
    function (err) {
      showError("kb-side-error", "删除失败：" + describeError(err));
    }
  );
}

// ---- documents ----
function loadDocs() {
  var name = kb.current;
  var seq = ++kb.docsSeq;
  kb.docsLoading = true;
  renderDocs();
  return apiJson("GET", kbPath(name, "/documents")).then(
    function (data) {
      if (seq !== kb.docsSeq || name !== kb.current) return;
      kb.docs = (data && data.data) || [];
      kb.docsError = "";
      kb.docsLoading = false;
      renderDocs();
    },
    function (err) {
      if (seq !== kb.docsSeq || name !== kb.current) return;
      kb.docsError = "无法获取文档列表：" + describeError(err);
      kb.docsLoading = false;
      renderDocs();
    }
  );
}

function renderDocs() {
  var ul = $("kb-docs");
  ul.textContent = "";
  $("kb-docs-count").textContent = kb.docs.length ? "（" + kb.docs.length + "）" : "";
  showError("kb-docs-error", kb.docsError);
  if (!kb.docs.length) {
    if (!kb.docsError) ul.appendChild(el("li", { className: "kb-list-note" }, kb.docsLoading ? "正在加载…" : "还没有文档，在上方上传文件。"));
    return;
  }
  kb.docs.forEach(function (d) {
    var li = el("li", { className: "kb-doc", "data-source": d.source });
    var main = el("div", { className: "kb-doc-main" });
    main.appendChild(el("div", { className: "kb-doc-name", title: d.source }, d.source));
    var meta = el("div", { className: "kb-doc-meta" });
    var parts = [(d.n_chunks || 0) + " 个片段", formatBytes(d.size)];
    if (d.added) parts.push(formatTime(d.added));
    meta.appendChild(el("span", null, parts.join(" · ")));
    (d.tags || []).forEach(function (t) {
      meta.appendChild(el("span", { className: "tag" }, t));
    });
    main.appendChild(meta);
    var rm = el("button", { type: "button", className: "btn btn-small kb-doc-remove", "aria-label": "移除 " + d.source }, "移除");
    rm.addEventListener("click", function () {
      removeDoc(d.source, rm);
    });
    li.appendChild(main);
    li.appendChild(rm);
    ul.appendChild(li);
  });
}

function removeDoc(source, btn) {
  var name = kb.current;
  if (!name || !window.confirm("从知识库“" + name + "”中移除文档“" + source + "”？")) return;
  btn.disabled = true;
  showError("kb-docs-error", "");
  apiJson("DELETE", kbPath(name, "/documents/" + encodeURIComponent(source))).then(
    function () {
      toast("已移除 " + source);
      loadKbs();
      if (name === kb.current) loadDocs();
    },
    function (err) {
      btn.disabled = false;
      if (name === kb.current) showError("kb-docs-error", "移除失败：" + describeError(err));
    }
  );
}

export function initKnowledgeBase() {
  $("kb-create-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    createKb();
  });
  $("kb-new-name").addEventListener("input", function () {
    showError("kb-side-error", "");
  });
  $("kb-refresh").addEventListener("click", function () {
    loadKbs();
    if (kb.current) loadDocs();
  });
  $("kb-delete").addEventListener("click", function () {
    if (kb.current) deleteKb(kb.current);
  });
  bindDropZone(function (name) {
    loadKbs();
    if (name === kb.current) loadDocs();
  });
  bindAsk();
  // the API key lives on the chat tab's settings: follow it
  var keyTimer = null;
  $("api-key").addEventListener("input", function () {
    clearTimeout(keyTimer);
    keyTimer = setTimeout(function () {
      if (kb.loaded || kb.listError) loadKbs();
    }, 600);
  });
  renderKbList();
  renderKbHead();
  updateAskButtons();
}

/** Runs each time the tab is shown: refresh the list (counts may have changed through the API/CLI). */
export function showKnowledgeBase() {
  loadKbs();
}
