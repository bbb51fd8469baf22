/* 知识库 tab: search (POST /v1/kb/{name}/search) and ask (POST /v1/kb/ask, SSE) with numbered citations. */
import { apiJson, describeError, postStream, readEvents } from "./api.js";
import { $, el, formatScore, showError } from "./dom.js";
import { KB_KIND, KB_MODE, kb, kbPath } from "./kb_state.js";
import { renderMarkdown } from "./markdown.js";
import { citationItem, linkCitations, sourceLine } from "./widgets.js";

function search() {
  var input = $("kb-search-input");
  var q = input.value.trim();
  if (!q || !kb.current) {
    input.focus();
    return;
  }
  var name = kb.current;
  var seq = ++kb.searchSeq;
  var mode = $("kb-search-mode").value;
  var body = { query: q, k: 5, mode: mode, rerank: $("kb-search-rerank").checked };
  var t0 = Date.now();
  $("kb-search-send").disabled = true;
  var status = $("kb-search-status");
  status.className = "kb-status busy";
  status.textContent = "正在检索…";
  apiJson("POST", kbPath(name, "/search"), body)
    .then(
      function (data) {
        if (seq !== kb.searchSeq) return;
        var hits = (data && data.data) || [];
        status.className = "kb-status";
        status.textContent = hits.length
          ? "找到 " + hits.length + " 条结果 · " + (KB_MODE[mode] || mode) + "检索 · " + (Date.now() - t0) + " ms"
          : "没有找到相关内容";
        renderHits(hits);
      },
      function (err) {
        if (seq !== kb.searchSeq) return;
        status.className = "kb-status err";
        status.textContent = "检索失败：" + describeError(err);
        $("kb-search-results").textContent = "";
      }
    )
    .then(function () {
      if (seq === kb.searchSeq) $("kb-search-send").disabled = false;
    });
}

function renderHits(hits) {
  var ol = $("kb-search-results");
  ol.textContent = "";
  hits.forEach(function (h, i) {
    var li = el("li", { className: "kb-hit", "data-source": h.source || "" });
    var head = el("div", { className: "kb-hit-head" });
    head.appendChild(el("span", { className: "kb-hit-rank" }, String(i + 1)));
    head.appendChild(el("span", { className: "kb-hit-source", title: sourceLine(h) }, sourceLine(h)));
    if (KB_KIND[h.kind]) head.appendChild(el("span", { className: "tag" }, KB_KIND[h.kind]));
    head.appendChild(el("span", { className: "kb-hit-score", title: "得分" }, formatScore(h.score)));
    li.appendChild(head);
    if (h.heading && (h.location || "").indexOf(h.heading) < 0) li.appendChild(el("div", { className: "kb-hit-heading" }, h.heading));
    li.appendChild(el("div", { className: "kb-hit-text" }, h.text || ""));
    if (h.answer) li.appendChild(el("div", { className: "kb-hit-answer" }, "答：" + h.answer));
    ol.appendChild(li);
  });
}

function applyAskEvent(st, obj) {
  if (!obj || typeof obj !== "object") return;
  if (obj.type === "sources") {
    st.sources = Array.isArray(obj.sources) ? obj.sources : [];
    st.listsDirty = true;
  } else if (obj.type === "delta") {
    if (typeof obj.text === "string") st.text += obj.text;
  } else if (obj.type === "done") {
    if (typeof obj.answer === "string") st.text = obj.answer; // the final text (may differ from the deltas)
    st.found = obj.found !== false;
    st.citations = Array.isArray(obj.citations) ? obj.citations : [];
    if (Array.isArray(obj.sources)) st.sources = obj.sources;
    st.done = true;
    st.listsDirty = true;
  } else if (obj.type === "error") {
    st.error = obj.message || "生成失败";
  } else if (obj.error) {
    st.error = typeof obj.error === "string" ? obj.error : obj.error.message || JSON.stringify(obj.error);
  }
}

function renderAskLists(st) {
  var cites = $("kb-citations");
  var sources = $("kb-sources");
  cites.textContent = "";
  sources.textContent = "";
  var showCites = st.done && st.found;
  $("kb-citations-head").hidden = !showCites;
  if (showCites) {
    if (!st.citations.length) cites.appendChild(el("li", { className: "kb-list-note" }, "回答没有标注引用。"));
    st.citations.forEach(function (c) {
      cites.appendChild(citationItem(c, "kb-cite-"));
    });
  }
  st.sources.forEach(function (c) {
    sources.appendChild(citationItem(c, "kb-source-"));
  });
  $("kb-sources-summary").textContent = "检索到的资料（" + st.sources.length + "）";
  $("kb-sources-box").hidden = !st.sources.length;
}

export function renderAsk() {
  var st = kb.ask;
  var wrap = $("kb-answer-wrap");
  var box = $("kb-answer");
  if (!st) {
    wrap.hidden = true;
    box.textContent = "";
    box.removeAttribute("data-done");
    box.removeAttribute("data-found");
    $("kb-citations").textContent = "";
    $("kb-sources").textContent = "";
    return;
  }
  wrap.hidden = false;
  // renderMarkdown escapes all text before adding its own tags; linkCitations only adds fixed markup
  box.innerHTML = linkCitations(renderMarkdown(st.text));
  var notFound = st.done && !st.found;
  box.classList.toggle("streaming", !!st.pending);
  wrap.classList.toggle("not-found", notFound);
  $("kb-answer-badge").hidden = !notFound;
  if (st.done) box.setAttribute("data-found", st.found ? "1" : "0");
  else box.removeAttribute("data-found");
  if (st.pending) box.removeAttribute("data-done");
  else box.setAttribute("data-done", "1");
  var note = "";
  if (st.pending) note = st.text ? "正在生成…" : st.sources.length ? "已检索到 " + st.sources.length + " 条资料，正在生成…" : "正在检索…";
  else if (st.stopped) note = "已停止生成";
  $("kb-answer-note").textContent = note;
  showError("kb-answer-error", st.error);
  if (st.listsDirty) {
    st.listsDirty = false;
    renderAskLists(st);
  }
}

export function updateAskButtons() {
  var busy = !!(kb.ask && kb.ask.pending);
  $("kb-ask-send").disabled = busy;
  $("kb-ask-stop").disabled = !busy;
}

function ask() {
  if (kb.ask && kb.ask.pending) return;
  var input = $("kb-ask-input");
  var q = input.value.trim();
  if (!q || !kb.current) {
    input.focus();
    return;
  }
  var st = {
    kb: kb.current,
    question: q,
    text: "",
    sources: [],
    citations: [],
    found: true,
    done: false,
    error: "",
    stopped: false,
    pending: true,
    listsDirty: true,
    controller: new AbortController(),
  };
  kb.ask = st;
  renderAsk();
  updateAskButtons();
  function redraw() {
    if (kb.ask === st) renderAsk();
  }
  postStream("/v1/kb/ask", { kb: st.kb, question: q, k: 4, stream: true }, st.controller.signal)
    .then(function (resp) {
      return readEvents(
        resp,
        function (obj) {
          applyAskEvent(st, obj);
        },
        redraw,
        function (obj) {
          applyAskEvent(st, Object.assign({ type: "done" }, obj));
        }
      );
    })
    .catch(function (err) {
      if (err && err.name === "AbortError") st.stopped = true;
      else st.error = describeError(err);
    })
    .then(function () {
      st.pending = false;
      if (!st.done && !st.error && !st.stopped) st.error = "回答没有完整返回（连接已中断）";
      redraw();
      if (kb.ask === st) updateAskButtons();
    });
}

/** Scroll to citation n (or to the retrieved source n while the answer is still streaming) and flash it. */
function focusCitation(n) {
  var target = $("kb-cite-" + n);
  if (!target) {
    target = $("kb-source-" + n);
    if (target) $("kb-sources-box").open = true;
  }
  if (!target) return;
  document.querySelectorAll("#panel-kb .kb-cite.flash").forEach(function (x) {
    x.classList.remove("flash");
  });
  void target.offsetWidth; // restart the animation
  target.classList.add("flash");
  target.scrollIntoView({ block: "nearest", behavior: "smooth" });
  target.focus({ preventScroll: true });
  clearTimeout(kb.flashTimer);
  kb.flashTimer = setTimeout(function () {
    target.classList.remove("flash");
  }, 2000);
}

/** Clear the search results and the answer shown for the previous knowledge base (and stop that answer). */
export function resetAnswers() {
  if (kb.ask && kb.ask.pending) kb.ask.controller.abort();
  kb.ask = null;
  kb.searchSeq++;
  $("kb-search-results").textContent = "";
  $("kb-search-status").textContent = "";
  $("kb-search-send").disabled = false;
  renderAsk();
  updateAskButtons();
}

/** The search and ask forms, the stop button, and [n] markers that jump to their citation. */
export function bindAsk() {
  $("kb-search-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    search();
  });
  $("kb-ask-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    ask();
  });
  $("kb-ask-stop").addEventListener("click", function () {
    if (kb.ask && kb.ask.pending) kb.ask.controller.abort();
  });
  $("kb-ask-input").addEventListener("keydown", function (ev) {
    if (ev.isComposing || ev.keyCode === 229) return; // IME candidate selection
    if (ev.key === "Enter" && !ev.shiftKey && !ev.altKey) {
      ev.preventDefault();
      ask();
    } else if (ev.key === "Escape" && kb.ask && kb.ask.pending) {
      kb.ask.controller.abort();
    }
  });
  $("kb-answer").addEventListener("click", function (ev) {
    var a = ev.target.closest && ev.target.closest("a[data-cite]");
    if (!a) return;
    ev.preventDefault();
    focusCitation(a.getAttribute("data-cite"));
  });
}
