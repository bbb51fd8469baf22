/* 摘要 tab: POST /v1/summarize (text) or /v1/summarize/file (an uploaded file), streamed as SSE with
 * `progress` events while the pieces are summarised, `delta` for the final summary, then `done`. */
import { apiFetch, describeError, readSse } from "./api.js";
import { $, showError } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

var summ = { controller: null };

function setSumBusy(busy) {
  $("sum-send").disabled = busy;
  $("sum-stop").disabled = !busy;
}

function runSummarize() {
  var text = $("sum-text").value;
  var file = $("sum-file").files && $("sum-file").files[0];
  showError("sum-error", "");
  if (!file && !text.trim()) {
    showError("sum-error", "请先粘贴文本或选择一个文件");
    return;
  }
  var opts = { mode: $("sum-mode").value, stream: true, extractive: $("sum-extractive").checked };
  var chars = parseInt($("sum-chars").value, 10);
  if (chars) opts.max_chars = chars;
  var lang = $("sum-language").value.trim();
  if (lang) opts.language = lang;
  var req;
  if (file) {
    var form = new FormData();
    form.append("file", file);
    form.append("options", JSON.stringify(opts));
    req = { method: "POST", headers: { Accept: "text/event-stream" }, body: form };
    req.url = "/v1/summarize/file";
  } else {
    req = {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(Object.assign({ text: text }, opts)),
    };
    req.url = "/v1/summarize";
  }
  summ.controller = new AbortController();
  req.signal = summ.controller.signal;
  var out = "";
  var done = null;
  $("sum-output").textContent = "";
  $("sum-stats").textContent = "";
  $("sum-progress").hidden = false;
  $("sum-progress-bar").removeAttribute("value");
  $("sum-progress-text").textContent = "准备中…";
  setSumBusy(true);
  apiFetch(req.url, req)
    .then(function (resp) {
      return readSse(
        resp.body,
        function (ev) {
          if (ev.type === "progress") {
            $("sum-progress-bar").max = Math.max(1, ev.total);
            $("sum-progress-bar").value = ev.done;
            var stage = ev.stage === "final" ? "写最终摘要" : ev.stage === "refine" ? "逐段精炼" : "分段摘要（第" + ev.stage.replace("level ", "") + "层）";
            $("sum-progress-text").textContent = stage + " " + ev.done + "/" + ev.total;
          } else if (ev.type === "delta") {
            out += ev.text;
          } else if (ev.type === "done") {
            done = ev;
          } else if (ev.type === "error") {
            showError("sum-error", ev.message);
          }
        },
        function () {
          $("sum-output").innerHTML = renderMarkdown(done ? done.summary : out);
        }
      );
    })
    .catch(function (err) {
      if (!(err && err.name === "AbortError")) showError("sum-error", describeError(err));
    })
    .then(function () {
      setSumBusy(false);
      $("sum-progress").hidden = true;
      if (done) {
        var bits = [done.input_chars + " 字"];
        if (done.method === "extractive") bits.push("抽取式");
        else bits.push(done.pieces + " 段", done.calls + " 次模型调用", done.prompt_tokens + done.completion_tokens + " tokens");
        $("sum-stats").textContent = bits.join(" · ");
      }
    });
}

export function initSummarize() {
  $("sum-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    runSummarize();
  });
  $("sum-stop").addEventListener("click", function () {
    if (summ.controller) summ.controller.abort();
  });
}
