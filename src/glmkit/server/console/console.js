/* glmkit web console: plain hand-written JavaScript, no build step, no dependencies, no external URLs.
 *
 * Structure
 *   - `tabs`: one entry per top tab (button#tab-ID); each owns one <section id="panel-ID" class="tab-panel"
 *     data-tab="ID"> in index.html, an `init()` called once on page load and an optional `show()` called
 *     each time the tab is opened.
 *     "chat" (对话), "kb" (知识库), "service" (客服), "agent" (坐席), "summarize" (摘要),
 *     "generate" (写作) and "safety" (安全, read-only: GET /v1/safety).
 *   - Markdown: `renderMarkdown()` escapes every piece of text BEFORE adding markup, so model output can
 *     never inject HTML; links are only made for http(s) URLs.
 *   - API: OpenAI-compatible endpoints of the glmkit server (`GET /v1/models`,
 *     `POST /v1/chat/completions` streamed as SSE) and the knowledge-base routes under `/v1/kb`
 *     (`POST /v1/kb/ask` streamed as SSE too), the customer-service routes under `/v1/service` (plain
 *     JSON, polled while a human agent is involved), `POST /v1/summarize` (SSE with progress) and
 *     `POST /v1/generate`, with an optional `Authorization: Bearer KEY`.
 *   - Storage: conversations, settings, the API key, the selected knowledge base, the customer-service
 *     session ids and the agent's name live in localStorage (this browser only); knowledge bases and
 *     customer-service sessions themselves live on the server.
 */
(function () {
  "use strict";

  // ------------------------------------------------------------------------------------------------
  // Storage
  // ------------------------------------------------------------------------------------------------
  var STORE = {
    conversations: "glmkit.console.conversations.v1",
    current: "glmkit.console.current.v1",
    settings: "glmkit.console.settings.v1",
    apiKey: "glmkit.console.apiKey",
    kbCurrent: "glmkit.console.kb.current.v1",
    service: "glmkit.console.service.v1",
    agent: "glmkit.console.agent.v1",
  };

  function loadJson(key, fallback) {
    try {
      var raw = window.localStorage.getItem(key);
      if (raw == null) return fallback;
      var v = JSON.parse(raw);
      return v == null ? fallback : v;
    } catch (e) {
      return fallback;
    }
  }

  function saveJson(key, value) {
    try {
      window.localStorage.setItem(key, JSON.stringify(value));
      return true;
    } catch (e) {
      return false; // quota exceeded or storage disabled: keep working in memory
    }
  }

  function loadString(key) {
    try {
      return window.localStorage.getItem(key) || "";
    } catch (e) {
      return "";
    }
  }

  function saveString(key, value) {
    try {
      if (value) window.localStorage.setItem(key, value);
      else window.localStorage.removeItem(key);
    } catch (e) {
      /* ignore */
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Small helpers
  // ------------------------------------------------------------------------------------------------
  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "className") node.className = attrs[k];
        else node.setAttribute(k, attrs[k]);
      });
    }
    if (text != null) node.textContent = text;
    return node;
  }

  function uid(prefix) {
    return (prefix || "") + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
  }

  var toastTimer = null;
  function toast(text) {
    var t = document.querySelector(".toast");
    if (!t) {
      t = el("div", { className: "toast", role: "status" });
      document.body.appendChild(t);
    }
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () {
      t.hidden = true;
    }, 1400);
  }

  /** Copy text: async Clipboard API when allowed, else a hidden <textarea> + execCommand("copy"). */
  function copyText(text) {
    function fallback() {
      return new Promise(function (resolve, reject) {
        var ta = document.createElement("textarea");
        ta.value = text;
        ta.setAttribute("readonly", "");
        ta.style.position = "fixed";
        ta.style.top = "-1000px";
        ta.style.opacity = "0";
        document.body.appendChild(ta);
        ta.select();
        var ok = false;
        try {
          ok = document.execCommand("copy");
        } catch (e) {
          ok = false;
        }
        document.body.removeChild(ta);
        if (ok) resolve();
        else reject(new Error("copy failed"));
      });
    }
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(fallback);
    }
    return fallback();
  }

  function flashButton(btn, text) {
    var old = btn.getAttribute("data-label") || btn.textContent;
    btn.setAttribute("data-label", old);
    btn.textContent = text;
    setTimeout(function () {
      btn.textContent = old;
    }, 1200);
  }

  function copyWithFeedback(btn, text) {
    copyText(text).then(
      function () {
        flashButton(btn, "已复制");
      },
      function () {
        flashButton(btn, "复制失败");
      }
    );
  }

  // ------------------------------------------------------------------------------------------------
  // Markdown (safe): escape first, then add a small, fixed set of tags.
  // ------------------------------------------------------------------------------------------------
  var ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return ESC[c];
    });
  }

  var HOLD = "\u0000"; // placeholder delimiter; stripped from input so it cannot be forged

  function anchor(hrefEscaped, labelHtml) {
    return '<a href="' + hrefEscaped + '" target="_blank" rel="noopener noreferrer nofollow">' + labelHtml + "</a>";
  }

  /** bold / italic / strikethrough on an already escaped string */
  function emphasis(s) {
    s = s.replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>");
    s = s.replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>");
    s = s.replace(/\*(?=[^\s*])([^*\n]*?[^\s*])\*/g, "<em>$1</em>");
    s = s.replace(/(^|[^\w])_(?=[^\s_])([^_\n]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>");
    s = s.replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
    return s;
  }

  /** One line (or a few joined lines) of inline markdown -> HTML. */
  function renderInline(raw) {
    var slots = [];
    function hold(html) {
      return HOLD + (slots.push(html) - 1) + HOLD;
    }
    var s = escapeHtml(String(raw).split(HOLD).join(""));
    // inline code first: nothing inside is interpreted
    s = s.replace(/``([^`]|[^`][\s\S]*?[^`])``/g, function (m, code) {
      return hold('<code class="inline">' + code.trim() + "</code>");
    });
    s = s.replace(/`([^`\n]+)`/g, function (m, code) {
      return hold('<code class="inline">' + code + "</code>");
    });
    // [label](http(s)://url) -- other schemes (javascript:, data:, ...) stay plain text
    s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)(?:\s+&quot;[^\n]*?&quot;)?\)/gi, function (m, label, url) {
      return hold(anchor(url, emphasis(label)));
    });
    // bare http(s) URLs; the text is escaped, so stop at entities and at non-ASCII (e.g. 。)
    s = s.replace(/https?:\/\/[A-Za-z0-9\-._~:/?#[\]@!$&()*+,;=%]+/gi, function (url) {
      var tail = "";
      var ent = url.search(/&(?:lt|gt|quot|#39);/);
      if (ent >= 0) {
        tail = url.slice(ent);
        url = url.slice(0, ent);
      }
      var trail = url.match(/[.,;:!?)\]]+$/);
      if (trail) {
        tail = trail[0] + tail;
        url = url.slice(0, -trail[0].length);
      }
      if (!/^https?:\/\/[^/]+/i.test(url)) return url + tail;
      return hold(anchor(url, url)) + tail;
    });
    s = emphasis(s);
    var guard = 0;
    var re = new RegExp(HOLD + "(\\d+)" + HOLD, "g");
    while (s.indexOf(HOLD) >= 0 && guard++ < 8) {
      s = s.replace(re, function (m, i) {
        return slots[+i] == null ? "" : slots[+i];
      });
    }
    return s.split(HOLD).join("");
  }

  var RE_FENCE = /^(\s*)(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
  var RE_HEADING = /^\s{0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
  var RE_HR = /^\s{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
  var RE_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;
  var RE_QUOTE = /^\s{0,3}>[ \t]?(.*)$/;
  var RE_TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

  function indentOf(line) {
    var m = line.match(/^[ \t]*/)[0];
    return m.replace(/\t/g, "    ").length;
  }

  function dedent(lines) {
    var min = Infinity;
    lines.forEach(function (l) {
      if (l.trim()) min = Math.min(min, indentOf(l));
    });
    if (!isFinite(min) || min === 0) return lines;
    return lines.map(function (l) {
      return l.replace(/\t/g, "    ").slice(Math.min(min, indentOf(l)));
    });
  }

  function codeBlock(code, lang) {
    var l = String(lang || "")
      .replace(/[^\w+#.-]/g, "")
      .slice(0, 24);
    return (
      '<div class="code-block"><div class="code-head"><span class="code-lang">' +
      escapeHtml(l || "text") +
      '</span><button type="button" class="copy-code" data-testid="copy-code">复制代码</button></div><pre><code' +
      (l ? ' class="language-' + escapeHtml(l.toLowerCase()) + '"' : "") +
      ">" +
      escapeHtml(code) +
      "</code></pre></div>"
    );
  }

  function isFenceClose(line, fence) {
    var t = line.trim();
    if (t.length < fence.length || t[0] !== fence[0]) return false;
    for (var k = 0; k < t.length; k++) if (t[k] !== fence[0]) return false;
    return true;
  }

  function splitRow(line) {
    var t = line.trim();
    if (t[0] === "|") t = t.slice(1);
    if (t[t.length - 1] === "|" && t[t.length - 2] !== "\\") t = t.slice(0, -1);
    return t.split(/(?<!\\)\|/).map(function (c) {
      return c.trim().replace(/\\\|/g, "|");
    });
  }

  function renderTable(header, aligns, rows) {
    function cell(tag, text, k) {
      var a = aligns[k];
      return "<" + tag + (a ? ' style="text-align:' + a + '"' : "") + ">" + renderInline(text) + "</" + tag + ">";
    }
    var h = "<table><thead><tr>";
    header.forEach(function (c, k) {
      h += cell("th", c, k);
    });
    h += "</tr></thead><tbody>";
    rows.forEach(function (r) {
      h += "<tr>";
      for (var k = 0; k < header.length; k++) h += cell("td", r[k] || "", k);
      h += "</tr>";
    });
    return h + "</tbody></table>";
  }

  function renderList(block, depth) {
    var base = indentOf(block[0]);
    var items = [];
    var fence = null;
    block.forEach(function (line) {
      var m = fence ? null : line.match(RE_ITEM);
      if (m && indentOf(line) <= base + 1 && !RE_HR.test(line)) {
        var marker = m[2];
        items.push({ ordered: /\d/.test(marker), num: parseInt(marker, 10), text: m[3], sub: [] });
        return;
      }
      if (items.length) items[items.length - 1].sub.push(line);
      var f = line.match(RE_FENCE);
      if (fence) {
        if (isFenceClose(line, fence)) fence = null;
      } else if (f) {
        fence = f[2];
      }
    });
    var html = "";
    var k = 0;
    while (k < items.length) {
      var ordered = items[k].ordered;
      var run = [];
      while (k < items.length && items[k].ordered === ordered) run.push(items[k++]);
      if (ordered) html += run[0].num !== 1 && run[0].num >= 0 ? '<ol start="' + run[0].num + '">' : "<ol>";
      else html += "<ul>";
      run.forEach(function (it) {
        var sub = it.sub.some(function (l) {
          return l.trim();
        })
          ? renderBlocks(dedent(it.sub), depth + 1)
          : "";
        html += "<li>" + renderInline(it.text) + sub + "</li>";
      });
      html += ordered ? "</ol>" : "</ul>";
    }
    return html;
  }

  function startsBlock(line) {
    return RE_FENCE.test(line) || RE_HEADING.test(line) || RE_HR.test(line) || RE_ITEM.test(line) || RE_QUOTE.test(line);
  }

  function renderBlocks(lines, depth) {
    if (depth > 12) return "<p>" + escapeHtml(lines.join("\n")).replace(/\n/g, "<br>") + "</p>";
    var out = [];
    var para = [];
    function flush() {
      if (para.length) {
        out.push("<p>" + para.map(renderInline).join("<br>") + "</p>");
        para = [];
      }
    }
    var i = 0;
    while (i < lines.length) {
      var line = lines[i];
      var m;
      if (!line.trim()) {
        flush();
        i++;
        continue;
      }
      // fenced code block (an unclosed fence runs to the end: that is what streaming looks like)
      if ((m = line.match(RE_FENCE))) {
        flush();
        var indent = m[1].replace(/\t/g, "    ").length;
        var fence = m[2];
        var body = [];
        i++;
        while (i < lines.length && !isFenceClose(lines[i], fence)) {
          var l = lines[i].replace(/\t/g, "    ");
          body.push(l.slice(Math.min(indent, indentOf(l))));
          i++;
        }
        i++; // closing fence
        out.push(codeBlock(body.join("\n"), m[3]));
        continue;
      }
      if ((m = line.match(RE_HEADING))) {
        flush();
        var n = m[1].length;
        out.push("<h" + n + ">" + renderInline(m[2]) + "</h" + n + ">");
        i++;
        continue;
      }
      if (RE_HR.test(line)) {
        flush();
        out.push("<hr>");
        i++;
        continue;
      }
      if (RE_QUOTE.test(line)) {
        flush();
        var quoted = [];
        while (i < lines.length && (m = lines[i].match(RE_QUOTE))) {
          quoted.push(m[1]);
          i++;
        }
        out.push("<blockquote>" + renderBlocks(quoted, depth + 1) + "</blockquote>");
        continue;
      }
      if (RE_ITEM.test(line)) {
        flush();
        var base = indentOf(line);
        var block = [line];
        var inFence = null;
        var f0 = line.match(RE_ITEM)[3].match(RE_FENCE);
        if (f0) inFence = f0[2];
        i++;
        while (i < lines.length) {
          var cur = lines[i];
          if (inFence) {
            block.push(cur);
            if (isFenceClose(cur, inFence)) inFence = null;
            i++;
            continue;
          }
          if (!cur.trim()) {
            var j = i + 1;
            while (j < lines.length && !lines[j].trim()) j++;
            if (j < lines.length && indentOf(lines[j]) >= base && (RE_ITEM.test(lines[j]) || indentOf(lines[j]) > base)) {
              block = block.concat(lines.slice(i, j));
              i = j;
              continue;
            }
            break;
          }
          if ((RE_ITEM.test(cur) && indentOf(cur) >= base) || indentOf(cur) > base) {
            var fm = cur.match(RE_FENCE);
            if (fm) inFence = fm[2];
            block.push(cur);
            i++;
            continue;
          }
          // lazy continuation of the last item's text
          if (!startsBlock(cur) && lines[i - 1].trim()) {
            block.push(" ".repeat(base + 2) + cur.trim());
            i++;
            continue;
          }
          break;
        }
        out.push(renderList(block, depth));
        continue;
      }
      // table: header row, separator row, body rows
      var sep = i + 1 < lines.length ? lines[i + 1] : "";
      if (line.indexOf("|") >= 0 && sep.indexOf("|") >= 0 && RE_TABLE_SEP.test(sep)) {
        var header = splitRow(line);
        var aligns = splitRow(sep).map(function (c) {
          var left = c[0] === ":";
          var right = c[c.length - 1] === ":";
          return left && right ? "center" : right ? "right" : left ? "left" : "";
        });
        if (header.length === aligns.length) {
          flush();
          var rows = [];
          i += 2;
          while (i < lines.length && lines[i].trim() && lines[i].indexOf("|") >= 0) {
            rows.push(splitRow(lines[i]));
            i++;
          }
          out.push(renderTable(header, aligns, rows));
          continue;
        }
      }
      para.push(line);
      i++;
    }
    flush();
    return out.join("");
  }

  /** Markdown text -> safe HTML string. */
  function renderMarkdown(src) {
    var text = String(src == null ? "" : src)
      .split(HOLD)
      .join("")
      .replace(/\r\n?/g, "\n");
    return renderBlocks(text.split("\n"), 0);
  }

  // ------------------------------------------------------------------------------------------------
  // API
  // ------------------------------------------------------------------------------------------------
  var api = {
    key: "",
    headers: function (extra) {
      var h = { Accept: "application/json" };
      if (extra) Object.keys(extra).forEach(function (k) {
        h[k] = extra[k];
      });
      if (this.key) h.Authorization = "Bearer " + this.key;
      return h;
    },
  };

  /** A readable message out of an error response: {"error": {"message"}} (OpenAI) or {"detail"} (FastAPI). */
  function errorFromResponse(resp) {
    return resp.text().then(
      function (body) {
        var msg = "";
        try {
          var j = JSON.parse(body);
          if (j && j.error) msg = typeof j.error === "string" ? j.error : j.error.message || JSON.stringify(j.error);
          else if (j && j.detail) msg = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail);
          else if (j && j.message) msg = String(j.message);
        } catch (e) {
          msg = (body || "").trim().slice(0, 500);
        }
        var head = "HTTP " + resp.status + (resp.statusText ? " " + resp.statusText : "");
        var err = new Error(msg ? head + "：" + msg : head);
        err.status = resp.status;
        return err;
      },
      function () {
        var err = new Error("HTTP " + resp.status);
        err.status = resp.status;
        return err;
      }
    );
  }

  function describeError(err) {
    if (!err) return "未知错误";
    if (err instanceof TypeError && /fetch|network|load/i.test(err.message || "")) {
      return "网络错误：无法连接服务器（" + err.message + "）";
    }
    var msg = err.message || String(err);
    if (err.status === 401 || err.status === 403) msg += "\n请检查右侧的 API Key 设置。";
    return msg;
  }

  /**
   * Read an OpenAI SSE stream: `data: {json}` lines, `data: [DONE]` at the end. Lines may be split across
   * network chunks, so keep the unfinished tail in a buffer. `onEvent(obj)` gets every parsed chunk;
   * `onBatch()` runs after each network read (to re-render once per read, not once per line).
   */
  function readSse(body, onEvent, onBatch) {
    var reader = body.getReader();
    var decoder = new TextDecoder("utf-8");
    var buf = "";
    var finished = false;

    function handleLine(line) {
      if (line.slice(0, 5) !== "data:") return; // comments (": ping"), event:, id:, retry:
      var payload = line.slice(5).trim();
      if (!payload) return;
      if (payload === "[DONE]") {
        finished = true;
        return;
      }
      var obj;
      try {
        obj = JSON.parse(payload);
      } catch (e) {
        return; // tolerate a malformed line rather than losing the whole answer
      }
      onEvent(obj);
    }

    function pump() {
      return reader.read().then(function (r) {
        if (r.done) {
          buf += decoder.decode();
          if (buf) handleLine(buf);
          buf = "";
          onBatch();
          return;
        }
        buf += decoder.decode(r.value, { stream: true });
        var lines = buf.split(/\r\n|\n|\r/);
        buf = lines.pop();
        for (var k = 0; k < lines.length && !finished; k++) handleLine(lines[k]);
        onBatch();
        if (finished) {
          reader.cancel().catch(function () {});
          return;
        }
        return pump();
      });
    }
    return pump();
  }

  // ------------------------------------------------------------------------------------------------
  // Chat tab
  // ------------------------------------------------------------------------------------------------
  var DEFAULT_SETTINGS = { model: "", systemPrompt: "", temperature: 0.8, top_p: 0.8, max_tokens: 1024, tab: "chat" };
  var TITLE_MAX = 20;
  var NEW_TITLE = "新对话";

  var chat = {
    conversations: [],
    currentId: null,
    settings: null,
    streaming: null, // {convId, msg, controller}
  };

  function saveConversations() {
    saveJson(STORE.conversations, chat.conversations);
    saveString(STORE.current, chat.currentId || "");
  }

  function saveSettings() {
    saveJson(STORE.settings, chat.settings);
  }

  function currentConversation() {
    for (var k = 0; k < chat.conversations.length; k++) {
      if (chat.conversations[k].id === chat.currentId) return chat.conversations[k];
    }
    return null;
  }

  function makeTitle(text) {
    var t = String(text).replace(/\s+/g, " ").trim();
    return t.length > TITLE_MAX ? t.slice(0, TITLE_MAX) + "…" : t || NEW_TITLE;
  }

  function storedConversations() {
    var convs = loadJson(STORE.conversations, []);
    if (!Array.isArray(convs)) return [];
    return convs.filter(function (c) {
      return c && typeof c.id === "string" && Array.isArray(c.messages);
    });
  }

  function loadChatState() {
    chat.conversations = storedConversations();
    // A stream cut by a reload leaves a pending message behind: keep what arrived and say so.
    chat.conversations.forEach(function (c) {
      c.messages.forEach(function (m) {
        if (m.pending) {
          delete m.pending;
          m.interrupted = true;
        }
      });
    });
    var cur = loadString(STORE.current);
    chat.currentId = chat.conversations.some(function (c) {
      return c.id === cur;
    })
      ? cur
      : null;
    var s = loadJson(STORE.settings, {});
    chat.settings = {};
    Object.keys(DEFAULT_SETTINGS).forEach(function (k) {
      chat.settings[k] = s && s[k] != null ? s[k] : DEFAULT_SETTINGS[k];
    });
    api.key = loadString(STORE.apiKey);
  }

  // ---- conversation list ----
  function renderConversationList() {
    var list = $("conversation-list");
    list.textContent = "";
    var convs = chat.conversations.slice().sort(function (a, b) {
      return (b.updatedAt || 0) - (a.updatedAt || 0);
    });
    if (!convs.length) {
      list.appendChild(el("li", { className: "conv-empty" }, "还没有会话"));
      return;
    }
    convs.forEach(function (c) {
      var li = el("li", { className: "conv" + (c.id === chat.currentId ? " active" : ""), "data-id": c.id });
      li.setAttribute("data-testid", "conversation-item");
      var open = el("button", { type: "button", className: "conv-open", title: c.title || NEW_TITLE }, c.title || NEW_TITLE);
      if (chat.streaming && chat.streaming.convId === c.id) open.textContent = "● " + (c.title || NEW_TITLE);
      var del = el("button", { type: "button", className: "conv-delete", title: "删除会话", "aria-label": "删除会话" }, "×");
      open.addEventListener("click", function () {
        selectConversation(c.id);
      });
      del.addEventListener("click", function (ev) {
        ev.stopPropagation();
        deleteConversation(c.id);
      });
      li.appendChild(open);
      li.appendChild(del);
      list.appendChild(li);
    });
  }

  function selectConversation(id) {
    chat.currentId = id;
    saveConversations();
    renderConversationList();
    renderMessages();
    $("message-input").focus();
  }

  function newConversation() {
    chat.currentId = null; // created lazily on the first message, so empty chats do not pile up
    saveConversations();
    renderConversationList();
    renderMessages();
    $("message-input").focus();
  }

  function deleteConversation(id) {
    if (chat.streaming && chat.streaming.convId === id) chat.streaming.controller.abort();
    chat.conversations = chat.conversations.filter(function (c) {
      return c.id !== id;
    });
    if (chat.currentId === id) chat.currentId = null;
    saveConversations();
    renderConversationList();
    renderMessages();
  }

  // ---- messages ----
  var SUGGESTIONS = ["用一句话介绍一下你自己。", "用 Python 写一个快速排序，并解释思路。", "帮我写一封请假邮件。", "解释一下什么是大语言模型。"];

  function renderWelcome(box) {
    var w = el("div", { className: "welcome" });
    w.appendChild(el("h2", null, "开始一段新对话"));
    w.appendChild(el("p", null, "模型运行在你的 glmkit 服务器上，回答以流式方式显示。"));
    var sug = el("div", { className: "suggestions" });
    SUGGESTIONS.forEach(function (s) {
      var b = el("button", { type: "button", className: "suggestion" }, s);
      b.addEventListener("click", function () {
        var input = $("message-input");
        input.value = s;
        input.focus();
      });
      sug.appendChild(b);
    });
    w.appendChild(sug);
    box.appendChild(w);
  }

  function messageElement(msg) {
    var role = msg.role === "user" ? "user" : "assistant";
    var node = el("div", { className: "msg msg-" + role, "data-id": msg.id, "data-role": role, "data-testid": "message" });
    node.appendChild(el("div", { className: "msg-avatar", "aria-hidden": "true" }, role === "user" ? "我" : "AI"));
    var main = el("div", { className: "msg-main" });
    var head = el("div", { className: "msg-head" });
    head.appendChild(el("span", { className: "msg-role" }, role === "user" ? "你" : "助手"));
    var actions = el("div", { className: "msg-actions" });
    var copy = el("button", { type: "button", className: "msg-action copy-msg", "data-testid": "copy-message" }, "复制");
    copy.addEventListener("click", function () {
      copyWithFeedback(copy, messageText(msg));
    });
    actions.appendChild(copy);
    head.appendChild(actions);
    main.appendChild(head);
    main.appendChild(el("div", { className: "msg-body md" }));
    main.appendChild(el("div", { className: "tool-calls", hidden: "" }));
    main.appendChild(el("div", { className: "msg-error", hidden: "", role: "alert" }));
    main.appendChild(el("div", { className: "msg-note" }));
    node.appendChild(main);
    updateMessageElement(node, msg);
    return node;
  }

  function messageText(msg) {
    var t = msg.content || "";
    if (msg.tool_calls && msg.tool_calls.length) {
      msg.tool_calls.forEach(function (tc) {
        var f = tc.function || {};
        t += (t ? "\n" : "") + (f.name || "") + "(" + (f.arguments || "") + ")";
      });
    }
    return t;
  }

  function prettyArgs(s) {
    try {
      return JSON.stringify(JSON.parse(s), null, 2);
    } catch (e) {
      return s || "";
    }
  }

  function updateMessageElement(node, msg) {
    var body = node.querySelector(".msg-body");
    // renderMarkdown escapes all text before adding its own tags (see above)
    body.innerHTML = renderMarkdown(msg.content || "");

    var tools = node.querySelector(".tool-calls");
    tools.textContent = "";
    if (msg.tool_calls && msg.tool_calls.length) {
      msg.tool_calls.forEach(function (tc) {
        if (!tc) return;
        var f = tc.function || {};
        var box = el("div", { className: "tool-call" });
        box.appendChild(el("span", null, "调用工具 "));
        box.appendChild(el("span", { className: "tool-call-name" }, f.name || "?"));
        box.appendChild(el("pre", null, prettyArgs(f.arguments)));
        tools.appendChild(box);
      });
      tools.hidden = false;
    } else {
      tools.hidden = true;
    }

    var errBox = node.querySelector(".msg-error");
    errBox.textContent = msg.error || "";
    errBox.hidden = !msg.error;
    if (msg.error) node.classList.add("has-error");

    var notes = [];
    if (msg.stopped) notes.push("已停止生成");
    if (msg.interrupted) notes.push("生成被中断（页面已刷新）");
    if (msg.finish_reason === "length") notes.push("已达到最大生成长度 max_tokens，回答可能不完整");
    if (msg.pending && !msg.content && !(msg.tool_calls && msg.tool_calls.length)) notes.push("正在生成…");
    node.querySelector(".msg-note").textContent = notes.join(" · ");

    if (msg.role !== "user") {
      if (msg.pending) {
        node.classList.add("streaming");
        node.removeAttribute("data-done");
      } else {
        node.classList.remove("streaming");
        node.setAttribute("data-done", "1");
      }
    }
  }

  function nearBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }

  function renderMessages() {
    var box = $("messages");
    box.textContent = "";
    var conv = currentConversation();
    if (!conv || !conv.messages.length) {
      renderWelcome(box);
      return;
    }
    conv.messages.forEach(function (m) {
      box.appendChild(messageElement(m));
    });
    box.scrollTop = box.scrollHeight;
  }

  /** Re-render one message if it is on screen (the user may have switched conversations mid-stream). */
  function refreshMessage(msg) {
    var box = $("messages");
    var node = box.querySelector('.msg[data-id="' + msg.id + '"]');
    if (!node) return;
    var stick = nearBottom(box);
    updateMessageElement(node, msg);
    if (stick) box.scrollTop = box.scrollHeight;
  }

  function updateButtons() {
    var busy = !!chat.streaming;
    $("send").disabled = busy;
    $("stop").disabled = !busy;
  }

  // ---- settings ----
  function numberSetting(id, key, min, max, isInt) {
    var input = $(id);
    input.value = chat.settings[key];
    input.addEventListener("input", function () {
      var v = isInt ? parseInt(input.value, 10) : parseFloat(input.value);
      if (isFinite(v) && v >= min && v <= max) {
        chat.settings[key] = v;
        saveSettings();
      }
    });
    input.addEventListener("change", function () {
      var v = isInt ? parseInt(input.value, 10) : parseFloat(input.value);
      if (!isFinite(v)) v = DEFAULT_SETTINGS[key];
      v = Math.min(max, Math.max(min, v));
      chat.settings[key] = v;
      input.value = v;
      saveSettings();
    });
  }

  function readNumber(id, key, min, max, isInt) {
    var raw = $(id).value;
    var v = isInt ? parseInt(raw, 10) : parseFloat(raw);
    if (!isFinite(v)) v = chat.settings[key];
    if (!isFinite(v)) v = DEFAULT_SETTINGS[key];
    return Math.min(max, Math.max(min, v));
  }

  function setStatus(text, kind) {
    var s = $("server-status");
    s.textContent = text;
    s.title = text;
    s.className = "server-status" + (kind ? " " + kind : "");
  }

  var modelsRequest = 0;
  function loadModels() {
    var seq = ++modelsRequest;
    var select = $("model-select");
    setStatus("正在获取模型列表…");
    return fetch("/v1/models", { headers: api.headers() })
      .then(function (resp) {
        if (!resp.ok) return errorFromResponse(resp).then(Promise.reject.bind(Promise));
        return resp.json();
      })
      .then(function (data) {
        if (seq !== modelsRequest) return;
        var ids = ((data && data.data) || [])
          .map(function (m) {
            return m && m.id;
          })
          .filter(Boolean);
        select.textContent = "";
        ids.forEach(function (id) {
          select.appendChild(el("option", { value: id }, id));
        });
        if (!ids.length) {
          select.appendChild(el("option", { value: "" }, "（无可用模型）"));
          setStatus("已连接 · 没有可用模型", "err");
          return;
        }
        select.value = ids.indexOf(chat.settings.model) >= 0 ? chat.settings.model : ids[0];
        chat.settings.model = select.value;
        saveSettings();
        setStatus("已连接 · " + ids.length + " 个模型", "ok");
      })
      .catch(function (err) {
        if (seq !== modelsRequest) return;
        select.textContent = "";
        var keep = chat.settings.model;
        select.appendChild(el("option", { value: keep }, keep || "（未获取到模型）"));
        setStatus("无法获取模型列表：" + describeError(err).split("\n")[0], "err");
      });
  }

  function bindSettings() {
    var select = $("model-select");
    select.addEventListener("change", function () {
      chat.settings.model = select.value;
      saveSettings();
    });
    $("refresh-models").addEventListener("click", loadModels);

    var sys = $("system-prompt");
    sys.value = chat.settings.systemPrompt || "";
    sys.addEventListener("input", function () {
      chat.settings.systemPrompt = sys.value;
      saveSettings();
    });

    numberSetting("temperature", "temperature", 0, 2, false);
    numberSetting("top-p", "top_p", 0, 1, false);
    numberSetting("max-tokens", "max_tokens", 1, 1000000, true);

    var key = $("api-key");
    key.value = api.key;
    var keyTimer = null;
    key.addEventListener("input", function () {
      api.key = key.value.trim();
      saveString(STORE.apiKey, api.key);
      clearTimeout(keyTimer);
      keyTimer = setTimeout(loadModels, 500);
    });

    $("reset-settings").addEventListener("click", function () {
      var model = chat.settings.model;
      var tab = chat.settings.tab;
      chat.settings = JSON.parse(JSON.stringify(DEFAULT_SETTINGS));
      chat.settings.model = model;
      chat.settings.tab = tab;
      saveSettings();
      sys.value = "";
      $("temperature").value = chat.settings.temperature;
      $("top-p").value = chat.settings.top_p;
      $("max-tokens").value = chat.settings.max_tokens;
      toast("已恢复默认设置");
    });
  }

  // ---- sending ----
  function buildMessages(conv, reply) {
    var out = [];
    var sys = (chat.settings.systemPrompt || "").trim();
    if (sys) out.push({ role: "system", content: sys });
    conv.messages.forEach(function (m) {
      if (m === reply) return;
      if (m.role === "assistant" && !m.content) return; // failed or tool-call-only turns are not replayed
      out.push({ role: m.role, content: m.content || "" });
    });
    return out;
  }

  function applyChunk(msg, obj) {
    if (obj.error) {
      var e = obj.error;
      msg.error = typeof e === "string" ? e : e.message || JSON.stringify(e);
      return;
    }
    var choice = obj.choices && obj.choices[0];
    if (!choice) return;
    var delta = choice.delta || choice.message || {};
    if (typeof delta.content === "string") msg.content += delta.content;
    else if (typeof choice.text === "string") msg.content += choice.text;
    if (Array.isArray(delta.tool_calls)) {
      msg.tool_calls = msg.tool_calls || [];
      delta.tool_calls.forEach(function (tc, pos) {
        var idx = typeof tc.index === "number" ? tc.index : pos;
        var acc = msg.tool_calls[idx];
        if (!acc) acc = msg.tool_calls[idx] = { id: "", type: "function", function: { name: "", arguments: "" } };
        if (tc.id) acc.id = tc.id;
        if (tc.type) acc.type = tc.type;
        var f = tc.function || {};
        if (f.name) acc.function.name += f.name;
        if (typeof f.arguments === "string") acc.function.arguments += f.arguments;
        else if (f.arguments != null) acc.function.arguments += JSON.stringify(f.arguments);
      });
    }
    if (choice.finish_reason) msg.finish_reason = choice.finish_reason;
  }

  function send() {
    if (chat.streaming) return;
    var input = $("message-input");
    var text = input.value;
    if (!text.trim()) {
      input.focus();
      return;
    }
    var model = $("model-select").value || chat.settings.model;
    var conv = currentConversation();
    var now = Date.now();
    if (!conv) {
      conv = { id: uid("c_"), title: NEW_TITLE, createdAt: now, updatedAt: now, messages: [] };
      chat.conversations.push(conv);
      chat.currentId = conv.id;
    }
    if (!conv.title || conv.title === NEW_TITLE) conv.title = makeTitle(text);
    conv.messages.push({ id: uid("m_"), role: "user", content: text, at: now });
    var reply = { id: uid("m_"), role: "assistant", content: "", pending: true, model: model, at: now };
    conv.messages.push(reply);
    conv.updatedAt = now;

    var payload = {
      model: model,
      messages: buildMessages(conv, reply),
      stream: true,
      temperature: readNumber("temperature", "temperature", 0, 2, false),
      top_p: readNumber("top-p", "top_p", 0, 1, false),
      max_tokens: readNumber("max-tokens", "max_tokens", 1, 1000000, true),
    };

    var controller = new AbortController();
    chat.streaming = { convId: conv.id, msg: reply, controller: controller };
    input.value = "";
    saveConversations();
    renderConversationList();
    renderMessages();
    updateButtons();

    fetch("/v1/chat/completions", {
      method: "POST",
      headers: api.headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(payload),
      signal: controller.signal,
    })
      .then(function (resp) {
        if (!resp.ok) return errorFromResponse(resp).then(Promise.reject.bind(Promise));
        var type = resp.headers.get("content-type") || "";
        if (!resp.body || type.indexOf("application/json") >= 0) {
          // a server that ignored stream=true: one JSON body
          return resp.json().then(function (obj) {
            applyChunk(reply, obj);
          });
        }
        return readSse(
          resp.body,
          function (obj) {
            applyChunk(reply, obj);
          },
          function () {
            refreshMessage(reply);
          }
        );
      })
      .catch(function (err) {
        if (err && err.name === "AbortError") reply.stopped = true;
        else reply.error = describeError(err);
      })
      .then(function () {
        delete reply.pending;
        conv.updatedAt = Date.now();
        if (chat.streaming && chat.streaming.msg === reply) chat.streaming = null;
        saveConversations();
        refreshMessage(reply);
        renderConversationList();
        updateButtons();
      });
  }

  function stop() {
    if (chat.streaming) chat.streaming.controller.abort();
  }

  function initChat() {
    loadChatState();
    bindSettings();

    $("composer").addEventListener("submit", function (ev) {
      ev.preventDefault();
      send();
    });
    $("stop").addEventListener("click", stop);
    $("new-chat").addEventListener("click", newConversation);

    var input = $("message-input");
    input.addEventListener("keydown", function (ev) {
      // IME composition (Chinese input) uses Enter to pick candidates: never send then
      if (ev.isComposing || ev.keyCode === 229) return;
      if (ev.key === "Enter" && !ev.shiftKey && !ev.altKey) {
        ev.preventDefault();
        send();
      } else if (ev.key === "Escape" && chat.streaming) {
        stop();
      }
    });

    // copy buttons inside rendered code blocks (delegated: the markdown HTML is re-rendered while streaming)
    $("messages").addEventListener("click", function (ev) {
      var btn = ev.target.closest && ev.target.closest(".copy-code");
      if (!btn) return;
      var block = btn.closest(".code-block");
      var code = block && block.querySelector("pre code");
      if (code) copyWithFeedback(btn, code.textContent);
    });

    window.addEventListener("beforeunload", function () {
      if (chat.streaming) saveConversations(); // keep a partial answer if the page goes away mid-stream
    });

    // another tab of the console changed the conversations: follow it (unless we are mid-stream)
    window.addEventListener("storage", function (ev) {
      if (ev.key !== STORE.conversations || chat.streaming) return;
      var keep = chat.currentId;
      chat.conversations = storedConversations();
      chat.currentId = chat.conversations.some(function (c) {
        return c.id === keep;
      }) ? keep : null;
      renderConversationList();
      renderMessages();
    });

    renderConversationList();
    renderMessages();
    updateButtons();
    loadModels();
    input.focus();
  }

  // ------------------------------------------------------------------------------------------------
  // Knowledge-base tab (知识库): the /v1/kb routes -- list / create / delete knowledge bases, their
  // documents, multipart upload with a per-file report, search, and ask (SSE) with numbered citations.
  // Every server string goes in through textContent, or through renderMarkdown (which escapes first).
  // ------------------------------------------------------------------------------------------------
  var KB_NAME_RE = /^[\p{L}\p{N}\p{M}_.\-]{1,64}$/u; // the server checks [\w.-]{1,64}, no leading "."
  var KB_CITE_RE = /\[(\d{1,2})\]/g; // the markers glmkit.apps.qa asks the model for
  var KB_STATUS = { added: "已添加", replaced: "已更新", unchanged: "未变化", failed: "失败" };
  var KB_STATUS_ICON = { added: "✓", replaced: "↻", unchanged: "=", failed: "✗" };
  var KB_KIND = { table: "表格", faq: "问答" };
  var KB_MODE = { hybrid: "混合", bm25: "关键词", vector: "向量" };

  var kb = {
    list: [],
    loaded: false,
    listError: "",
    current: null, // name of the selected knowledge base
    docs: [],
    docsError: "",
    docsLoading: false,
    listSeq: 0,
    docsSeq: 0,
    searchSeq: 0,
    uploading: false,
    ask: null, // {kb, question, text, sources, citations, found, done, error, stopped, pending, controller}
    flashTimer: null,
  };

  /** JSON request with the console's headers; rejects with a readable Error on 4xx/5xx. */
  function apiJson(method, path, body) {
    var opts = { method: method, headers: api.headers(body !== undefined ? { "Content-Type": "application/json" } : null) };
    if (body !== undefined) opts.body = JSON.stringify(body);
    return fetch(path, opts).then(function (resp) {
      if (!resp.ok) return errorFromResponse(resp).then(Promise.reject.bind(Promise));
      return resp.json();
    });
  }

  function kbPath(name, rest) {
    return "/v1/kb/" + encodeURIComponent(name) + (rest || "");
  }

  function formatBytes(n) {
    n = +n || 0;
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function formatTime(sec) {
    var d = new Date((+sec || 0) * 1000);
    if (!isFinite(d.getTime()) || !sec) return "";
    function two(x) {
      return (x < 10 ? "0" : "") + x;
    }
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + two(d.getHours()) + ":" + two(d.getMinutes());
  }

  function formatScore(x) {
    var v = +x;
    if (!isFinite(v)) return "";
    return Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(4);
  }

  function showError(id, text) {
    var box = $(id);
    box.textContent = text || "";
    box.hidden = !text;
  }

  function currentKb() {
    for (var k = 0; k < kb.list.length; k++) if (kb.list[k].name === kb.current) return kb.list[k];
    return null;
  }

  function kbCounts(r) {
    return (r.documents || 0) + " 个文档 · " + (r.chunks || 0) + " 个片段";
  }

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
    if (kb.ask && kb.ask.pending) kb.ask.controller.abort();
    kb.ask = null;
    kb.docs = [];
    kb.docsError = "";
    kb.searchSeq++;
    kb.docsSeq++;
    $("kb-upload-results").textContent = "";
    $("kb-upload-status").textContent = "";
    $("kb-upload-status").className = "kb-status";
    $("kb-search-results").textContent = "";
    $("kb-search-status").textContent = "";
    $("kb-search-send").disabled = false;
    showError("kb-docs-error", "");
    renderAsk();
    updateAskButtons();
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

  // ---- upload ----
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
    fetch(kbPath(name, "/documents"), { method: "POST", headers: api.headers(), body: form })
      .then(function (resp) {
        if (!resp.ok) return errorFromResponse(resp).then(Promise.reject.bind(Promise));
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
        loadKbs();
        if (name === kb.current) loadDocs();
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

  function bindDropZone() {
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

  // ---- search ----
  function readK(id, fallback, max) {
    var v = parseInt(($(id) && $(id).value) || "", 10);
    return isFinite(v) ? Math.min(max, Math.max(1, v)) : fallback;
  }

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

  function sourceLine(x) {
    return (x.source || "?") + (x.location ? " · " + x.location : "");
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

  // ---- ask (SSE) ----
  /**
   * `[n]` markers -> superscript links, on HTML that renderMarkdown already made safe. Only text between
   * tags is touched (never an attribute), and never inside <code>, <pre> or an existing <a>.
   */
  function linkCitations(html) {
    var parts = html.split(/(<[^>]*>)/);
    var skip = 0;
    for (var k = 0; k < parts.length; k++) {
      if (k % 2 === 1) {
        var m = parts[k].match(/^<(\/?)(code|pre|a)\b/i);
        if (m) skip = Math.max(0, skip + (m[1] ? -1 : 1));
        continue;
      }
      if (skip || parts[k].indexOf("[") < 0) continue;
      parts[k] = parts[k].replace(KB_CITE_RE, function (all, n) {
        n = String(parseInt(n, 10));
        return '<sup class="cite-ref"><a href="#kb-cite-' + n + '" data-cite="' + n + '" title="查看引用 ' + n + '">' + n + "</a></sup>";
      });
    }
    return parts.join("");
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

  function citationItem(c, prefix) {
    var n = String(c.n);
    var li = el("li", { className: "kb-cite", id: prefix + n, value: n, "data-n": n, "data-source": c.source || "", tabindex: "-1" });
    var head = el("div", { className: "kb-cite-head" });
    head.appendChild(el("span", { className: "kb-cite-n" }, "[" + n + "]"));
    head.appendChild(el("span", { className: "kb-cite-source", title: sourceLine(c) }, sourceLine(c)));
    if (c.score != null) head.appendChild(el("span", { className: "kb-hit-score", title: "得分" }, formatScore(c.score)));
    li.appendChild(head);
    if (c.heading && (c.location || "").indexOf(c.heading) < 0) li.appendChild(el("div", { className: "kb-hit-heading" }, c.heading));
    li.appendChild(el("div", { className: "kb-hit-text" }, c.text || ""));
    return li;
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

  function renderAsk() {
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

  function updateAskButtons() {
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
    fetch("/v1/kb/ask", {
      method: "POST",
      headers: api.headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({ kb: st.kb, question: q, k: 4, stream: true }),
      signal: st.controller.signal,
    })
      .then(function (resp) {
        if (!resp.ok) return errorFromResponse(resp).then(Promise.reject.bind(Promise));
        var type = resp.headers.get("content-type") || "";
        if (!resp.body || type.indexOf("application/json") >= 0) {
          return resp.json().then(function (obj) {
            applyAskEvent(st, Object.assign({ type: "done" }, obj));
          });
        }
        return readSse(
          resp.body,
          function (obj) {
            applyAskEvent(st, obj);
          },
          redraw
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

  function initKnowledgeBase() {
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
    bindDropZone();
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
  function showKnowledgeBase() {
    loadKbs();
  }

  // ------------------------------------------------------------------------------------------------
  // Customer-service tabs (routes under /v1/service):
  //   客服 (service): the customer's side -- pick a bot, start a session, talk; each bot answer has a
  //     "为什么这样回答" trace panel and thumbs up/down. While a human is involved (state waiting/human)
  //     the session is polled every 2 s so the agent's messages appear.
  //   坐席 (agent): the human agents' side -- the hand-off queue (polled every 3 s), take a session, its
  //     full history, reply, hand it back to the bot; plus analytics as a table and an inline SVG chart.
  // What is shown is always the server's session (GET), so a reload continues where it was. Server text
  // goes in through textContent, or renderMarkdown for bot/agent answers (which escapes first); the chart
  // is built with createElementNS + textContent, never markup strings.
  // ------------------------------------------------------------------------------------------------
  var SVC_POLL_MS = 2000;
  var AGENT_POLL_MS = 3000;
  var ANALYTICS_EVERY = 5; // agent polls between two analytics refreshes (~15 s)
  var SVG_NS = "http://www.w3.org/2000/svg"; // the SVG namespace name (not fetched)
  var SVC_NO_BOTS = "启动服务时用 --bot CONFIG 加载客服机器人";
  var SVC_ROUTE = {
    faq: "常见问题",
    kb: "知识库",
    tool: "工具调用",
    chat: "模型对话",
    clarify: "澄清追问",
    handoff: "转人工",
    held_by_human: "人工处理中",
    human: "人工回复",
  };
  var SVC_ROUTE_COLOR = {
    faq: "#22a06b",
    kb: "#2f6bff",
    tool: "#7c4dff",
    chat: "#5b7083",
    clarify: "#e8a317",
    handoff: "#d93026",
    held_by_human: "#f07c2b",
  };
  var CHART_PALETTE = ["#2f6bff", "#22a06b", "#7c4dff", "#e8a317", "#d93026", "#0fa3b1", "#f07c2b", "#5b7083"];
  var SVC_STATE = { bot: "机器人接待中", waiting: "等待人工接入…", human: "人工客服接待中" };
  var SVC_TRIGGER = { "explicit request": "客户明确要求转人工", "angry/urgent": "客户情绪激动或紧急", "low confidence": "意图置信度过低" };
  var SVC_REASON = [
    [/^customer asked for a human/, "客户要求转人工"],
    [/^angry or urgent message/, "客户情绪激动或紧急"],
    [/^still unclear after/, "多次澄清仍未理解"],
    [/^intent .* goes to people/, "该类问题由人工处理"],
    [/^the tool call could not be formed/, "无法生成工具调用"],
    [/^tool .* failed/, "工具调用失败"],
  ];
  var FEEDBACK_KEEP = 500;

  var svc = {
    prefs: null, // {bot, user, sessions: {bot: sid}, feedback: {message_id: rating}} (localStorage)
    bots: [],
    botsLoaded: false,
    botsError: "",
    botsSeq: 0,
    bot: "",
    sid: "",
    session: null, // the last GET of the session (without its messages)
    messages: [],
    pending: null, // the text being sent, shown until the server's copy arrives
    note: "", // the bot's "please wait" line while waiting (the server does not store it)
    error: "",
    sending: false,
    creating: false,
    loadSeq: 0,
    polling: false,
  };

  var agent = {
    prefs: null, // {name, bot, session} (localStorage)
    bot: "",
    waiting: [],
    taken: [],
    queueLoaded: false,
    queueError: "",
    queueSeq: 0,
    queueBusy: false,
    queueSig: "",
    current: "", // the session open in the middle column
    session: null,
    messages: [],
    loadSeq: 0,
    historyBusy: false,
    sending: false,
    acting: false, // take / release in flight
    analyticsSeq: 0,
    ticks: 0,
  };

  function asObject(v) {
    return v && typeof v === "object" && !Array.isArray(v) ? v : {};
  }

  function asString(v) {
    return typeof v === "string" ? v : "";
  }

  function loadSvcPrefs() {
    var p = asObject(loadJson(STORE.service, {}));
    return { bot: asString(p.bot), user: asString(p.user), sessions: asObject(p.sessions), feedback: asObject(p.feedback) };
  }

  function saveSvcPrefs() {
    var fb = svc.prefs.feedback;
    var keys = Object.keys(fb);
    if (keys.length > FEEDBACK_KEEP) keys.slice(0, keys.length - FEEDBACK_KEEP).forEach(function (k) {
      delete fb[k];
    });
    saveJson(STORE.service, svc.prefs);
  }

  function loadAgentPrefs() {
    var p = asObject(loadJson(STORE.agent, {}));
    return { name: asString(p.name), bot: asString(p.bot), session: asString(p.session) };
  }

  function saveAgentPrefs() {
    saveJson(STORE.agent, agent.prefs);
  }

  function svcPath(bot, rest) {
    return "/v1/service/" + encodeURIComponent(bot) + (rest || "");
  }

  function sessionPath(bot, sid, rest) {
    return svcPath(bot, "/sessions/" + encodeURIComponent(sid) + (rest || ""));
  }

  function routeLabel(route) {
    return SVC_ROUTE[route] || route || "?";
  }

  function reasonLabel(reason) {
    var r = String(reason || "");
    for (var k = 0; k < SVC_REASON.length; k++) if (SVC_REASON[k][0].test(r)) return SVC_REASON[k][1];
    return r || "转人工";
  }

  function percent(x) {
    var v = +x;
    return isFinite(v) ? (Math.round(v * 1000) / 10).toFixed(1) + "%" : "–";
  }

  function count(x) {
    var v = +x;
    return isFinite(v) ? String(v) : "0";
  }

  function clock(sec) {
    var d = new Date((+sec || 0) * 1000);
    if (!sec || !isFinite(d.getTime())) return "";
    function two(x) {
      return (x < 10 ? "0" : "") + x;
    }
    var t = two(d.getHours()) + ":" + two(d.getMinutes());
    return d.toDateString() === new Date().toDateString() ? t : two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + t;
  }

  function waited(sec) {
    var s = Math.max(0, Date.now() / 1000 - (+sec || 0));
    if (!sec || !isFinite(s)) return "";
    if (s < 60) return "刚刚";
    if (s < 3600) return Math.floor(s / 60) + " 分钟前";
    if (s < 86400) return Math.floor(s / 3600) + " 小时前";
    return Math.floor(s / 86400) + " 天前";
  }

  function shortId(sid) {
    sid = String(sid || "");
    return sid.length > 10 ? sid.slice(0, 8) + "…" : sid;
  }

  function pretty(v) {
    if (typeof v === "string") return prettyArgs(v);
    try {
      return JSON.stringify(v, null, 2);
    } catch (e) {
      return String(v);
    }
  }

  function sortedEntries(obj) {
    return Object.keys(asObject(obj))
      .map(function (k) {
        return [k, +obj[k] || 0];
      })
      .sort(function (a, b) {
        return b[1] - a[1] || (a[0] < b[0] ? -1 : 1);
      });
  }

  function setBadge(node, state, agentName) {
    node.hidden = !state;
    node.setAttribute("data-state", state || "");
    node.className = "svc-state" + (state ? " state-" + state : "");
    var text = SVC_STATE[state] || state || "";
    if (state === "human" && agentName) text += " · " + agentName;
    node.textContent = text;
  }

  // ---- the "为什么这样回答" panel ----
  function traceElement(tr) {
    var route = asString(tr.route);
    var box = el("details", { className: "svc-trace", "data-route": route, "data-testid": "svc-trace" });
    var sum = el("summary", null, "为什么这样回答");
    sum.appendChild(el("span", { className: "tag svc-route-tag route-" + (route || "none") }, routeLabel(route)));
    box.appendChild(sum);
    var dl = el("dl", { className: "svc-trace-list" });
    function row(label, content, key) {
      dl.appendChild(el("dt", null, label));
      var dd = el("dd", key ? { "data-key": key } : null);
      if (content && content.nodeType) dd.appendChild(content);
      else dd.textContent = content == null ? "" : String(content);
      dl.appendChild(dd);
    }
    row("路由", routeLabel(route) + (route ? "（" + route + "）" : ""), "route");
    if (tr.trigger) {
      var trig = SVC_TRIGGER[tr.trigger] || String(tr.trigger);
      if (Array.isArray(tr.words) && tr.words.length) trig += "：" + tr.words.join("、");
      row("触发", trig, "trigger");
    }
    if (Object.prototype.hasOwnProperty.call(tr, "intent")) {
      var it = asObject(tr.intent);
      if (!tr.intent) row("意图", "未识别（没有配置意图模型）", "intent");
      else {
        var node = el("div");
        node.appendChild(el("span", { className: "svc-intent" }, asString(it.label) || "?"));
        node.appendChild(el("span", { className: "svc-conf" }, " · 置信度 " + percent(it.confidence)));
        var top = Array.isArray(it.top) ? it.top : [];
        if (top.length > 1) {
          node.appendChild(
            el(
              "div",
              { className: "svc-top" },
              "候选：" +
                top
                  .slice(0, 5)
                  .map(function (p) {
                    return Array.isArray(p) ? String(p[0]) + " " + percent(p[1]) : String(p);
                  })
                  .join(" · ")
            )
          );
        }
        row("意图", node, "intent");
      }
    }
    if (tr.faq) {
      var f = asObject(tr.faq);
      var sim = +f.similarity;
      row("FAQ 条目", asString(f.question) + (isFinite(sim) ? "（相似度 " + sim.toFixed(3) + "）" : ""), "faq");
    }
    if (Array.isArray(tr.sources)) {
      if (!tr.sources.length) row("资料来源", tr.found === false ? "知识库中没有找到依据" : "无", "sources");
      else {
        var ol = el("ol", { className: "svc-sources" });
        tr.sources.forEach(function (c) {
          c = asObject(c);
          var li = el("li");
          li.appendChild(el("span", { className: "kb-cite-n" }, "[" + count(c.n) + "] "));
          li.appendChild(el("span", { className: "svc-source-name" }, sourceLine(c)));
          var text = asString(c.text);
          if (text) li.appendChild(el("div", { className: "svc-source-text", title: text }, text.length > 240 ? text.slice(0, 240) + "…" : text));
          ol.appendChild(li);
        });
        row("资料来源", ol, "sources");
      }
      if (tr.found === false && tr.sources.length) row("结果", "资料不足以回答", "found");
    }
    if (Array.isArray(tr.tool_calls) && tr.tool_calls.length) {
      var calls = el("div", { className: "tool-calls" });
      tr.tool_calls.forEach(function (c) {
        c = asObject(c);
        var call = el("div", { className: "tool-call" });
        call.appendChild(el("span", null, "调用工具 "));
        call.appendChild(el("span", { className: "tool-call-name" }, asString(c.name) || "?"));
        call.appendChild(el("div", { className: "svc-sub" }, "参数"));
        call.appendChild(el("pre", null, pretty(c.arguments)));
        if (c.error != null) call.appendChild(el("div", { className: "svc-sub err" }, "出错：" + String(c.error)));
        else {
          call.appendChild(el("div", { className: "svc-sub" }, "结果"));
          call.appendChild(el("pre", null, pretty(c.result)));
        }
        calls.appendChild(call);
      });
      row("工具调用", calls, "tool_calls");
    }
    if (Array.isArray(tr.tool_error) && tr.tool_error.length) row("工具错误", tr.tool_error.join("；"), "tool_error");
    if (tr.handoff) {
      var h = asObject(tr.handoff);
      var hn = el("div");
      hn.appendChild(el("div", { title: asString(h.reason) }, "原因：" + reasonLabel(h.reason) + (h.reason ? "（" + h.reason + "）" : "")));
      hn.appendChild(el("div", null, "分组：" + (asString(h.group) || "default")));
      if (h.summary) hn.appendChild(el("div", null, "摘要：" + h.summary));
      row("转人工", hn, "handoff");
    }
    if (route === "held_by_human") row("状态", (SVC_STATE[tr.state] || tr.state || "") + (tr.agent ? " · " + tr.agent : ""), "state");
    box.appendChild(dl);
    box.addEventListener("toggle", function () {
      if (box.open) box.scrollIntoView({ block: "nearest" });
    });
    return box;
  }

  // ---- messages (shared by both tabs) ----
  var SVC_WHO = {
    customer: { user: ["我", "你"], assistant: ["AI", "智能客服"], agent: ["人", "人工客服"] },
    agent: { user: ["客", "客户"], assistant: ["AI", "机器人"], agent: ["人", "坐席"] },
  };

  function svcRole(m) {
    return m.role === "user" || m.role === "agent" ? m.role : "assistant";
  }

  function feedbackButtons(m) {
    var box = el("div", { className: "svc-feedback", role: "group", "aria-label": "这个回答有帮助吗" });
    var rated = svc.prefs.feedback[m.id];
    [
      [1, "svc-fb-up", "有帮助"],
      [-1, "svc-fb-down", "没帮助"],
    ].forEach(function (spec) {
      var b = el("button", { type: "button", className: "msg-action svc-fb " + spec[1], "aria-pressed": rated === spec[0] ? "true" : "false" }, spec[2]);
      b.addEventListener("click", function () {
        sendFeedback(m.id, spec[0], box);
      });
      box.appendChild(b);
    });
    return box;
  }

  function sendFeedback(mid, rating, box) {
    var bot = svc.bot;
    if (!bot || !mid) return;
    var buttons = box.querySelectorAll("button");
    buttons.forEach(function (b) {
      b.disabled = true;
    });
    apiJson("POST", svcPath(bot, "/messages/" + encodeURIComponent(mid) + "/feedback"), { rating: rating, comment: "" })
      .then(
        function () {
          svc.prefs.feedback[mid] = rating;
          saveSvcPrefs();
          box.querySelector(".svc-fb-up").setAttribute("aria-pressed", rating === 1 ? "true" : "false");
          box.querySelector(".svc-fb-down").setAttribute("aria-pressed", rating === -1 ? "true" : "false");
          toast("感谢您的反馈");
        },
        function (err) {
          toast("反馈没有提交：" + describeError(err).split("\n")[0]);
        }
      )
      .then(function () {
        buttons.forEach(function (b) {
          b.disabled = false;
        });
      });
  }

  function svcMessageElement(m, view) {
    var role = svcRole(m);
    var who = SVC_WHO[view][role];
    var node = el("div", { className: "msg svc-msg svc-" + role, "data-role": role, "data-id": asString(m.id) });
    node.appendChild(el("div", { className: "msg-avatar", "aria-hidden": "true" }, who[0]));
    var main = el("div", { className: "msg-main" });
    var head = el("div", { className: "msg-head" });
    var name = who[1];
    var tr = asObject(m.trace);
    if (role === "agent" && view === "agent" && tr.agent) name += " · " + tr.agent;
    head.appendChild(el("span", { className: "msg-role" }, name));
    head.appendChild(el("span", { className: "svc-time" }, clock(m.ts)));
    main.appendChild(head);
    var body;
    if (role === "user") body = el("div", { className: "msg-body svc-plain" }, asString(m.text));
    else {
      body = el("div", { className: "msg-body md" });
      body.innerHTML = renderMarkdown(asString(m.text)); // escapes all text before adding its own tags
    }
    main.appendChild(body);
    if (role === "assistant" && (m.trace || (view === "customer" && m.id))) {
      var foot = el("div", { className: "svc-foot" });
      if (m.trace) foot.appendChild(traceElement(tr));
      else foot.appendChild(el("span", { className: "spacer" }));
      if (view === "customer" && m.id) foot.appendChild(feedbackButtons(m));
      main.appendChild(foot);
    }
    node.appendChild(main);
    return node;
  }

  /**
   * Show `messages` (the server's, append-only) in `box`: nodes already shown are kept (so an open trace
   * panel stays open while polling); the transient lines (`extras`: sending, notes) are redrawn after them.
   */
  function renderThread(box, key, messages, view, extras) {
    var stick = nearBottom(box);
    if (box.getAttribute("data-session") !== key) {
      box.textContent = "";
      box.setAttribute("data-session", key);
      stick = true;
    }
    box.querySelectorAll(".svc-transient").forEach(function (n) {
      n.parentNode.removeChild(n);
    });
    var shown = box.querySelectorAll(".svc-msg");
    var same = shown.length <= messages.length;
    for (var k = 0; same && k < shown.length; k++) same = shown[k].getAttribute("data-id") === asString(messages[k].id);
    if (!same) {
      box.textContent = "";
      shown = [];
    }
    for (var j = shown.length; j < messages.length; j++) {
      box.appendChild(svcMessageElement(messages[j], view));
      stick = true;
    }
    (extras || []).forEach(function (n) {
      n.classList.add("svc-transient");
      box.appendChild(n);
    });
    if (stick) box.scrollTop = box.scrollHeight;
  }

  function noteElement(text, cls) {
    return el("div", { className: "svc-note" + (cls ? " " + cls : "") }, text);
  }

  function welcomeElement(title, text) {
    var w = el("div", { className: "welcome svc-welcome" });
    w.appendChild(el("h2", null, title));
    w.appendChild(el("p", null, text));
    return w;
  }

  // ---- bots (shared) ----
  function fillBotSelect(select, current) {
    select.textContent = "";
    if (!svc.bots.length) {
      select.appendChild(el("option", { value: "" }, svc.botsLoaded ? "（没有客服机器人）" : svc.botsError ? "（无法获取）" : "正在加载…"));
      select.value = "";
      return;
    }
    svc.bots.forEach(function (n) {
      select.appendChild(el("option", { value: n }, n));
    });
    select.value = current;
  }

  function pickBot(wanted) {
    return (
      [wanted]
        .concat(svc.bots)
        .filter(function (n) {
          return n && svc.bots.indexOf(n) >= 0;
        })[0] || ""
    );
  }

  function loadBots() {
    var seq = ++svc.botsSeq;
    return apiJson("GET", "/v1/service").then(
      function (data) {
        if (seq !== svc.botsSeq) return;
        svc.bots = ((data && data.data) || [])
          .map(function (b) {
            return b && asString(b.name);
          })
          .filter(Boolean);
        svc.botsLoaded = true;
        svc.botsError = "";
        applyBots();
      },
      function (err) {
        if (seq !== svc.botsSeq) return;
        svc.botsError = describeError(err);
        applyBots();
      }
    );
  }

  function applyBots() {
    var s = pickBot(svc.bot || svc.prefs.bot);
    var a = pickBot(agent.bot || agent.prefs.bot);
    fillBotSelect($("svc-bot"), s);
    fillBotSelect($("agent-bot"), a);
    var hint = svc.botsError ? "无法获取客服机器人列表：" + svc.botsError : svc.botsLoaded && !svc.bots.length ? SVC_NO_BOTS : "";
    ["svc-hint", "agent-hint"].forEach(function (id) {
      $(id).textContent = hint;
      $(id).hidden = !hint;
      $(id).classList.toggle("err", !!svc.botsError);
    });
    if (s !== svc.bot) selectSvcBot(s);
    else renderSvc();
    if (a !== agent.bot) selectAgentBot(a);
    else renderAgent();
  }

  // ---- 客服: the customer's view ----
  function selectSvcBot(name) {
    svc.bot = name || "";
    if (svc.bot) {
      svc.prefs.bot = svc.bot;
      saveSvcPrefs();
    }
    svc.sid = svc.bot ? asString(svc.prefs.sessions[svc.bot]) : "";
    svc.session = null;
    svc.messages = [];
    svc.note = "";
    svc.error = "";
    svc.loadSeq++;
    renderSvc();
    if (svc.sid) svcLoadSession();
  }

  function setSvcSession(sid) {
    svc.sid = sid || "";
    if (svc.sid) svc.prefs.sessions[svc.bot] = svc.sid;
    else delete svc.prefs.sessions[svc.bot];
    saveSvcPrefs();
  }

  function svcLoadSession() {
    var bot = svc.bot;
    var sid = svc.sid;
    if (!bot || !sid) return Promise.resolve();
    var seq = ++svc.loadSeq;
    return apiJson("GET", sessionPath(bot, sid)).then(
      function (s) {
        if (seq !== svc.loadSeq || bot !== svc.bot || sid !== svc.sid) return;
        svc.session = asObject(s);
        svc.messages = Array.isArray(s.messages) ? s.messages : [];
        if (svc.session.state !== "waiting") svc.note = "";
        svc.error = "";
        renderSvc();
      },
      function (err) {
        if (seq !== svc.loadSeq || bot !== svc.bot || sid !== svc.sid) return;
        if (err.status === 404) {
          // gone (another server home, or cleaned up): start afresh on the next message
          setSvcSession("");
          svc.session = null;
          svc.messages = [];
          svc.note = "";
        } else {
          svc.error = "无法获取会话：" + describeError(err);
        }
        renderSvc();
      }
    );
  }

  function svcNewSession() {
    if (!svc.bot || svc.creating) return Promise.resolve(false);
    var bot = svc.bot;
    svc.creating = true;
    svc.error = "";
    updateSvcButtons();
    return apiJson("POST", svcPath(bot, "/sessions"), { user: $("svc-user").value.trim() || "访客" })
      .then(
        function (r) {
          if (bot !== svc.bot || !r || !r.session) return false;
          setSvcSession(String(r.session));
          svc.session = null;
          svc.messages = [];
          svc.note = "";
          return svcLoadSession().then(function () {
            return true;
          });
        },
        function (err) {
          if (bot === svc.bot) svc.error = "创建会话失败：" + describeError(err);
          return false;
        }
      )
      .then(function (ok) {
        svc.creating = false;
        renderSvc();
        return ok;
      });
  }

  function svcSend() {
    if (svc.sending || svc.creating || !svc.bot) return;
    var input = $("svc-input");
    var text = input.value.trim();
    if (!text) {
      input.focus();
      return;
    }
    svc.sending = true;
    svc.pending = text;
    svc.note = "";
    svc.error = "";
    input.value = "";
    renderSvc();
    (svc.sid ? Promise.resolve(true) : svcNewSession())
      .then(function (ok) {
        if (!ok) throw null; // the reason is on screen already
        var bot = svc.bot;
        var sid = svc.sid;
        return apiJson("POST", sessionPath(bot, sid, "/messages"), { text: text }).then(function (r) {
          if (bot !== svc.bot || sid !== svc.sid) return;
          r = asObject(r);
          // a reply with no message id is the "please wait" line while waiting; null while a human holds it
          svc.note = r.reply != null && !r.message_id ? String(r.reply) : "";
          if (svc.session && r.state) svc.session.state = r.state;
          return svcLoadSession();
        });
      })
      .catch(function (err) {
        if (err && err.status === 404 && svc.sid) {
          // the session (or the bot) is gone on the server: the next message starts a new one
          setSvcSession("");
          svc.session = null;
          svc.messages = [];
          svc.error = "会话已不存在（服务器可能已重置），请重新发送以开始新会话。";
        } else if (err) {
          svc.error = "发送失败：" + describeError(err);
        }
        if (!input.value) input.value = text; // keep what the customer typed
      })
      .then(function () {
        svc.sending = false;
        svc.pending = null;
        renderSvc();
      });
  }

  function updateSvcButtons() {
    var ready = !!svc.bot;
    $("svc-bot").disabled = !svc.bots.length || svc.sending;
    $("svc-new").disabled = !ready || svc.creating || svc.sending;
    $("svc-send").disabled = !ready || svc.sending || svc.creating;
    $("svc-input").disabled = !ready;
  }

  function renderSvc() {
    var s = svc.session;
    var state = s && asString(s.state);
    setBadge($("svc-state"), state, "");
    $("svc-title").textContent = svc.bot ? "在线客服 · " + svc.bot : "在线客服";
    $("svc-meta").textContent = svc.sid ? "会话 " + shortId(svc.sid) : "";
    $("svc-meta").title = svc.sid;

    var info = $("svc-info");
    info.textContent = "";
    if (s && svc.sid) {
      [
        ["会话", svc.sid],
        ["用户", asString(s.user)],
        ["开始于", formatTime(s.created)],
        ["消息", String(svc.messages.length)],
      ].forEach(function (r) {
        info.appendChild(el("dt", null, r[0]));
        info.appendChild(el("dd", null, r[1]));
      });
    }
    info.hidden = !(s && svc.sid);

    var extras = [];
    if (!svc.messages.length && !svc.pending) {
      extras.push(
        svc.bot
          ? welcomeElement("有什么可以帮您？", "以客户身份向客服机器人提问；每条回答下可以展开“为什么这样回答”查看它的判断依据。")
          : welcomeElement("在线客服", svc.botsLoaded || svc.botsError ? SVC_NO_BOTS : "正在加载客服机器人…")
      );
    }
    if (svc.pending) {
      var p = svcMessageElement({ role: "user", text: svc.pending, ts: Date.now() / 1000 }, "customer");
      p.classList.remove("svc-msg");
      p.classList.add("svc-pending");
      extras.push(p);
      if (!state || state === "bot") extras.push(noteElement("客服正在输入…", "svc-typing"));
    }
    if (svc.note) extras.push(noteElement(svc.note, "svc-wait"));
    if (state === "waiting" && !svc.note && !svc.pending) extras.push(noteElement("正在为您转接人工客服，请稍候…", "svc-wait"));
    if (state === "human" && !svc.pending) extras.push(noteElement("人工客服正在为您服务", "svc-human-note"));
    renderThread($("svc-messages"), svc.bot + "/" + svc.sid, svc.messages, "customer", extras);
    showError("svc-error", svc.error);
    $("svc-hint-bar").textContent =
      state === "human" ? "人工客服正在为您服务 · Enter 发送" : state === "waiting" ? "正在转接人工客服，请稍候 · 您可以继续留言" : "Enter 发送 · Shift+Enter 换行 · 输入“转人工”可转接人工客服";
    updateSvcButtons();
  }

  function svcPoll() {
    if ($("panel-service").hidden || svc.polling || svc.sending || !svc.session) return;
    if (svc.session.state !== "waiting" && svc.session.state !== "human") return;
    svc.polling = true;
    svcLoadSession().then(function () {
      svc.polling = false;
    });
  }

  function initService() {
    svc.prefs = loadSvcPrefs();
    $("svc-user").value = svc.prefs.user;
    $("svc-user").addEventListener("input", function () {
      svc.prefs.user = $("svc-user").value.trim();
      saveSvcPrefs();
    });
    $("svc-bot").addEventListener("change", function () {
      selectSvcBot($("svc-bot").value);
    });
    $("svc-refresh").addEventListener("click", loadBots);
    $("svc-new").addEventListener("click", function () {
      svcNewSession().then(function (ok) {
        if (ok) $("svc-input").focus();
      });
    });
    $("svc-composer").addEventListener("submit", function (ev) {
      ev.preventDefault();
      svcSend();
    });
    $("svc-input").addEventListener("keydown", function (ev) {
      if (ev.isComposing || ev.keyCode === 229) return; // IME candidate selection
      if (ev.key === "Enter" && !ev.shiftKey && !ev.altKey) {
        ev.preventDefault();
        svcSend();
      }
    });
    // the API key lives on the chat tab's settings: follow it
    var keyTimer = null;
    $("api-key").addEventListener("input", function () {
      clearTimeout(keyTimer);
      keyTimer = setTimeout(function () {
        if (svc.botsLoaded || svc.botsError) loadBots();
      }, 600);
    });
    setInterval(svcPoll, SVC_POLL_MS);
    fillBotSelect($("svc-bot"), "");
    renderSvc();
  }

  function showService() {
    loadBots();
    if (svc.sid) svcLoadSession();
    if (!$("svc-input").disabled) $("svc-input").focus();
  }

  // ---- 坐席: the human agents' view ----
  function agentName() {
    return $("agent-name").value.trim();
  }

  function selectAgentBot(name) {
    var changed = (name || "") !== agent.bot;
    agent.bot = name || "";
    if (agent.bot) {
      agent.prefs.bot = agent.bot;
      saveAgentPrefs();
    }
    if (changed) {
      agent.waiting = [];
      agent.taken = [];
      agent.queueLoaded = false;
      agent.queueError = "";
      agent.queueSeq++;
      openAgentSession(agent.bot && agent.prefs.session && !agent.current ? agent.prefs.session : "");
    }
    renderAgent();
    if (agent.bot && !$("panel-agent").hidden) {
      loadQueue();
      loadAnalytics();
    }
  }

  function loadQueue() {
    var bot = agent.bot;
    if (!bot) return Promise.resolve();
    var seq = ++agent.queueSeq;
    agent.queueBusy = true;
    return Promise.all([
      apiJson("GET", svcPath(bot, "/handoffs?status=waiting")),
      apiJson("GET", svcPath(bot, "/handoffs?status=taken")),
    ])
      .then(
        function (res) {
          if (seq !== agent.queueSeq || bot !== agent.bot) return;
          agent.waiting = (res[0] && res[0].data) || [];
          agent.taken = (res[1] && res[1].data) || [];
          agent.queueLoaded = true;
          agent.queueError = "";
          renderQueue();
        },
        function (err) {
          if (seq !== agent.queueSeq || bot !== agent.bot) return;
          agent.queueError = describeError(err);
          renderQueue();
        }
      )
      .then(function () {
        if (seq === agent.queueSeq) agent.queueBusy = false;
      });
  }

  function queueItem(h, mine) {
    var sid = asString(h.session);
    var li = el("li", { className: "agent-item" + (sid === agent.current ? " active" : "") + (mine ? " mine" : ""), "data-session": sid });
    var head = el("div", { className: "agent-item-head" });
    head.appendChild(el("span", { className: "agent-sid", title: sid }, shortId(sid)));
    head.appendChild(el("span", { className: "tag" }, asString(h.group) || "default"));
    head.appendChild(el("span", { className: "agent-wait", title: formatTime(h.ts) }, waited(h.ts)));
    li.appendChild(head);
    li.appendChild(el("div", { className: "agent-reason", title: asString(h.reason) }, reasonLabel(h.reason)));
    if (h.summary) li.appendChild(el("div", { className: "agent-summary", title: asString(h.summary) }, asString(h.summary)));
    var bar = el("div", { className: "agent-item-bar" });
    if (h.status === "taken") {
      bar.appendChild(el("span", { className: "agent-by" }, mine ? "由我接待" : "由 " + (asString(h.agent) || "?") + " 接待"));
      var open = el("button", { type: "button", className: "btn btn-small agent-open" }, sid === agent.current ? "查看中" : mine ? "打开" : "查看");
      open.disabled = sid === agent.current;
      open.addEventListener("click", function () {
        openAgentSession(sid);
      });
      bar.appendChild(open);
    } else {
      var take = el("button", { type: "button", className: "btn btn-small btn-primary agent-take", "data-testid": "agent-take" }, "接入");
      take.disabled = agent.acting;
      take.addEventListener("click", function () {
        takeSession(sid, take);
      });
      bar.appendChild(take);
    }
    li.appendChild(bar);
    return li;
  }

  function renderQueue() {
    var q = $("agent-queue");
    var t = $("agent-taken");
    // polled every 3 s: leave the lists alone when nothing changed (a click in progress is not lost)
    var sig = JSON.stringify([agent.bot, agent.waiting, agent.taken, agent.current, agentName(), agent.acting,
      agent.queueLoaded, agent.queueError, svc.botsLoaded, Math.floor(Date.now() / 30000)]);
    if (sig === agent.queueSig) return;
    agent.queueSig = sig;
    q.textContent = "";
    t.textContent = "";
    $("agent-queue-count").textContent = agent.waiting.length ? "（" + agent.waiting.length + "）" : "";
    $("agent-taken-count").textContent = agent.taken.length ? "（" + agent.taken.length + "）" : "";
    if (agent.queueError) {
      q.appendChild(el("li", { className: "kb-list-note err" }, "无法获取队列：" + agent.queueError));
      return;
    }
    if (!agent.bot) {
      q.appendChild(el("li", { className: "kb-list-note" }, svc.botsLoaded || svc.botsError ? "没有客服机器人" : "正在加载…"));
      return;
    }
    if (!agent.queueLoaded) {
      q.appendChild(el("li", { className: "kb-list-note" }, "正在加载…"));
      return;
    }
    if (!agent.waiting.length) q.appendChild(el("li", { className: "kb-list-note" }, "没有等待接入的会话"));
    agent.waiting.forEach(function (h) {
      q.appendChild(queueItem(h, false));
    });
    var me = agentName();
    var taken = agent.taken.slice().sort(function (a, b) {
      return (b.agent === me) - (a.agent === me);
    });
    if (!taken.length) t.appendChild(el("li", { className: "kb-list-note" }, "没有接待中的会话"));
    taken.forEach(function (h) {
      t.appendChild(queueItem(h, !!me && h.agent === me));
    });
  }

  function openAgentSession(sid) {
    agent.current = sid || "";
    agent.prefs.session = agent.current;
    saveAgentPrefs();
    agent.session = null;
    agent.messages = [];
    agent.loadSeq++;
    showError("agent-error", "");
    renderAgent();
    if (agent.current) loadAgentSession();
  }

  function loadAgentSession() {
    var bot = agent.bot;
    var sid = agent.current;
    if (!bot || !sid) return Promise.resolve();
    var seq = ++agent.loadSeq;
    agent.historyBusy = true;
    return apiJson("GET", sessionPath(bot, sid))
      .then(
        function (s) {
          if (seq !== agent.loadSeq || bot !== agent.bot || sid !== agent.current) return;
          agent.session = asObject(s);
          agent.messages = Array.isArray(s.messages) ? s.messages : [];
          renderAgent();
        },
        function (err) {
          if (seq !== agent.loadSeq || bot !== agent.bot || sid !== agent.current) return;
          if (err.status === 404) openAgentSession("");
          else showError("agent-error", "无法获取会话：" + describeError(err));
        }
      )
      .then(function () {
        if (seq === agent.loadSeq) agent.historyBusy = false;
      });
  }

  function needName() {
    if (agentName()) return false;
    showError("agent-side-error", "请先填写坐席名称");
    $("agent-name").focus();
    return true;
  }

  function takeSession(sid, btn) {
    if (agent.acting || !agent.bot || needName()) return;
    var bot = agent.bot;
    agent.acting = true;
    btn.disabled = true;
    showError("agent-side-error", "");
    apiJson("POST", svcPath(bot, "/handoffs/" + encodeURIComponent(sid) + "/take"), { agent: agentName() })
      .then(
        function () {
          if (bot !== agent.bot) return;
          toast("已接入会话 " + shortId(sid));
          openAgentSession(sid);
          $("agent-input").focus();
        },
        function (err) {
          showError("agent-side-error", "接入失败：" + describeError(err));
        }
      )
      .then(function () {
        agent.acting = false;
        loadQueue();
        loadAnalytics();
      });
  }

  function canReply() {
    var s = agent.session;
    return !!(s && s.state === "human" && s.agent && s.agent === agentName());
  }

  function agentSend() {
    if (agent.sending || !canReply()) return;
    var input = $("agent-input");
    var text = input.value.trim();
    if (!text) {
      input.focus();
      return;
    }
    var bot = agent.bot;
    var sid = agent.current;
    agent.sending = true;
    input.value = "";
    showError("agent-error", "");
    updateAgentButtons();
    apiJson("POST", sessionPath(bot, sid, "/agent"), { agent: agentName(), text: text })
      .then(
        function () {
          return loadAgentSession();
        },
        function (err) {
          showError("agent-error", "发送失败：" + describeError(err));
          if (!input.value) input.value = text;
        }
      )
      .then(function () {
        agent.sending = false;
        updateAgentButtons();
      });
  }

  function releaseSession() {
    if (agent.acting || !canReply()) return;
    var bot = agent.bot;
    var sid = agent.current;
    agent.acting = true;
    updateAgentButtons();
    showError("agent-error", "");
    apiJson("POST", svcPath(bot, "/handoffs/" + encodeURIComponent(sid) + "/release"), { agent: agentName() })
      .then(
        function () {
          toast("已交还机器人");
          return loadAgentSession();
        },
        function (err) {
          showError("agent-error", "交还失败：" + describeError(err));
        }
      )
      .then(function () {
        agent.acting = false;
        updateAgentButtons();
        loadQueue();
        loadAnalytics();
      });
  }

  function agentHint() {
    var s = agent.session;
    if (!agent.current) return "在左侧队列中接入一个会话";
    if (!s) return "正在加载会话…";
    if (s.state === "waiting") return "该会话正在等待接入";
    if (s.state === "bot") return "会话已由机器人接待，无需人工回复";
    if (s.agent && s.agent !== agentName()) return "该会话由 " + s.agent + " 接待，只能查看";
    return "以 " + agentName() + " 的身份回复客户 · Enter 发送";
  }

  function updateAgentButtons() {
    var ok = canReply();
    $("agent-input").disabled = !ok;
    $("agent-send").disabled = !ok || agent.sending;
    $("agent-release").disabled = !ok || agent.acting;
    $("agent-bot").disabled = !svc.bots.length;
    $("agent-hint-bar").textContent = agentHint();
  }

  function renderAgent() {
    var s = agent.session;
    var state = s && asString(s.state);
    setBadge($("agent-state"), state, s && asString(s.agent));
    $("agent-title").textContent = agent.current ? "会话 " + shortId(agent.current) : "坐席工作台";
    $("agent-title").title = agent.current;
    var meta = [];
    if (s) {
      if (s.user) meta.push("客户 " + s.user);
      if (s.group) meta.push("分组 " + s.group);
      if (s.created) meta.push("开始于 " + formatTime(s.created));
    }
    $("agent-meta").textContent = meta.join(" · ");
    var extras = [];
    if (!agent.current) extras.push(welcomeElement("坐席工作台", "在左侧填写坐席名称，接入等待中的会话：这里会显示客户与机器人的全部对话，回复后客户那边会实时看到。"));
    else if (s && state === "bot") extras.push(noteElement("会话已交还机器人", "svc-human-note"));
    renderThread($("agent-history"), agent.bot + "/" + agent.current, agent.messages, "agent", extras);
    renderQueue();
    updateAgentButtons();
  }

  // ---- analytics: a table and an inline SVG bar chart ----
  function loadAnalytics() {
    var bot = agent.bot;
    if (!bot) return Promise.resolve();
    var seq = ++agent.analyticsSeq;
    return apiJson("GET", svcPath(bot, "/analytics")).then(
      function (a) {
        if (seq !== agent.analyticsSeq || bot !== agent.bot) return;
        showError("analytics-error", "");
        renderAnalytics(asObject(a));
      },
      function (err) {
        if (seq !== agent.analyticsSeq || bot !== agent.bot) return;
        showError("analytics-error", "无法获取统计：" + describeError(err));
      }
    );
  }

  function renderAnalytics(a) {
    var table = $("analytics-table");
    table.textContent = "";
    table.appendChild(el("caption", { className: "sr-only" }, "客服统计"));
    var body = el("tbody");
    function section(title) {
      var tr = el("tr", { className: "analytics-section" });
      tr.appendChild(el("th", { colspan: "2", scope: "colgroup" }, title));
      body.appendChild(tr);
    }
    function row(label, value, key, code) {
      var tr = el("tr", { "data-key": key });
      var th = el("th", { scope: "row" }, label);
      if (code) th.appendChild(el("code", { className: "analytics-code" }, code));
      tr.appendChild(th);
      tr.appendChild(el("td", null, value));
      body.appendChild(tr);
    }
    function empty(text) {
      var tr = el("tr", { className: "analytics-empty" });
      tr.appendChild(el("td", { colspan: "2" }, text));
      body.appendChild(tr);
    }
    section("概览");
    row("会话数", count(a.sessions), "sessions");
    row("机器人回答", count(a.answers), "answers");
    row("转人工率", percent(a.handoff_rate), "handoff_rate");
    row("未找到答案", count(a.unanswered), "unanswered");
    section("路由");
    var routes = sortedEntries(a.routes);
    if (!routes.length) empty("还没有回答");
    routes.forEach(function (r) {
      row(routeLabel(r[0]), String(r[1]), "route:" + r[0], r[0]);
    });
    section("意图");
    var intents = sortedEntries(a.intents);
    if (!intents.length) empty("暂无意图数据");
    intents.forEach(function (r) {
      row(r[0], String(r[1]), "intent:" + r[0]);
    });
    table.appendChild(body);
    drawChart(routes, intents);
  }

  function svgEl(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) {
      node.setAttribute(k, String(attrs[k]));
    });
    if (text != null) node.textContent = text;
    return node;
  }

  function clip(s, n) {
    s = String(s);
    return s.length > n ? s.slice(0, n - 1) + "…" : s;
  }

  /** Horizontal bars, one group per dimension; every label is set with textContent. */
  function drawChart(routes, intents) {
    var svg = $("analytics-chart");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var W = 320;
    var LABEL_X = 88; // labels end here (right-aligned)
    var BAR_X = 94;
    var BAR_MAX = W - BAR_X - 34;
    var ROW = 22;
    var BAR_H = 14;
    var groups = [
      { key: "route", title: "路由分布", empty: "还没有回答", items: routes.map(function (r) {
        return { key: r[0], label: routeLabel(r[0]), value: r[1], color: SVC_ROUTE_COLOR[r[0]] };
      }) },
      { key: "intent", title: "意图分布", empty: "暂无意图数据（未配置意图模型或尚无回答）", items: intents.map(function (r) {
        return { key: r[0], label: r[0], value: r[1] };
      }) },
    ];
    var y = 0;
    groups.forEach(function (g) {
      y += 16;
      svg.appendChild(svgEl("text", { x: 0, y: y, class: "chart-title" }, g.title));
      y += 6;
      if (!g.items.length) {
        y += 16;
        svg.appendChild(svgEl("text", { x: 0, y: y, class: "chart-empty" }, g.empty));
        y += 10;
        return;
      }
      var max = 1;
      g.items.forEach(function (it) {
        max = Math.max(max, it.value);
      });
      g.items.forEach(function (it, i) {
        var top = y + 4;
        var w = it.value > 0 ? Math.max(3, Math.round((BAR_MAX * it.value) / max)) : 0;
        var row = svgEl("g", { class: "chart-row", "data-group": g.key, "data-key": it.key });
        row.appendChild(svgEl("title", null, it.label + (it.label !== it.key ? "（" + it.key + "）" : "") + "：" + it.value));
        row.appendChild(svgEl("text", { x: LABEL_X, y: top + BAR_H - 3, "text-anchor": "end", class: "chart-label" }, clip(it.label, 7)));
        row.appendChild(svgEl("rect", { x: BAR_X, y: top, width: W - BAR_X - 34, height: BAR_H, rx: 3, class: "bar-track" }));
        row.appendChild(
          svgEl("rect", {
            x: BAR_X,
            y: top,
            width: w,
            height: BAR_H,
            rx: 3,
            class: "bar bar-" + g.key,
            fill: it.color || CHART_PALETTE[i % CHART_PALETTE.length],
            "data-key": it.key,
            "data-value": it.value,
          })
        );
        row.appendChild(svgEl("text", { x: BAR_X + w + 4, y: top + BAR_H - 3, class: "chart-value" }, String(it.value)));
        svg.appendChild(row);
        y += ROW;
      });
      y += 8;
    });
    svg.setAttribute("viewBox", "0 0 " + W + " " + y);
  }

  function agentPoll() {
    if ($("panel-agent").hidden || !agent.bot) return;
    if (!agent.queueBusy) loadQueue();
    if (agent.current && !agent.historyBusy && !agent.sending) loadAgentSession();
    if (++agent.ticks % ANALYTICS_EVERY === 0) loadAnalytics();
  }

  function initAgent() {
    agent.prefs = loadAgentPrefs();
    agent.current = "";
    var name = $("agent-name");
    name.value = agent.prefs.name;
    name.addEventListener("input", function () {
      agent.prefs.name = name.value.trim();
      saveAgentPrefs();
      if (agent.prefs.name) showError("agent-side-error", "");
      renderQueue();
      updateAgentButtons();
    });
    $("agent-bot").addEventListener("change", function () {
      agent.prefs.session = "";
      agent.current = "";
      selectAgentBot($("agent-bot").value);
    });
    $("agent-refresh").addEventListener("click", function () {
      loadBots();
      loadQueue();
    });
    $("analytics-refresh").addEventListener("click", loadAnalytics);
    $("agent-composer").addEventListener("submit", function (ev) {
      ev.preventDefault();
      agentSend();
    });
    $("agent-release").addEventListener("click", releaseSession);
    $("agent-input").addEventListener("keydown", function (ev) {
      if (ev.isComposing || ev.keyCode === 229) return;
      if (ev.key === "Enter" && !ev.shiftKey && !ev.altKey) {
        ev.preventDefault();
        agentSend();
      }
    });
    setInterval(agentPoll, AGENT_POLL_MS);
    fillBotSelect($("agent-bot"), "");
    renderAgent();
  }

  function showAgent() {
    loadBots();
    if (agent.bot) {
      loadQueue();
      loadAnalytics();
      if (agent.current) loadAgentSession();
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Tabs: add an entry here and a matching <section id="panel-ID" class="tab-panel" data-tab="ID"> in
  // index.html; the tab's button gets id="tab-ID".
  // ------------------------------------------------------------------------------------------------

  // ------------------------------------------------------------------------------------------------
  // 摘要 tab: POST /v1/summarize (text) or /v1/summarize/file (an uploaded file), streamed as SSE with
  // `progress` events while the pieces are summarised, `delta` for the final summary, then `done`.
  // ------------------------------------------------------------------------------------------------
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
      req = { method: "POST", headers: api.headers({ Accept: "text/event-stream" }), body: form };
      req.url = "/v1/summarize/file";
    } else {
      req = {
        method: "POST",
        headers: api.headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
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
    fetch(req.url, req)
      .then(function (resp) {
        if (!resp.ok) return errorFromResponse(resp).then(Promise.reject.bind(Promise));
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

  function initSummarize() {
    $("sum-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      runSummarize();
    });
    $("sum-stop").addEventListener("click", function () {
      if (summ.controller) summ.controller.abort();
    });
  }

  // ------------------------------------------------------------------------------------------------
  // 写作 tab: GET /v1/generate/templates fills the kinds; POST /v1/generate returns the text and its
  // check report (form, keywords, length), shown as a list of problems when a constraint was missed.
  // ------------------------------------------------------------------------------------------------
  var gen = { templates: null };

  function loadTemplates() {
    return fetch("/v1/generate/templates", { headers: api.headers() })
      .then(function (resp) {
        if (!resp.ok) return errorFromResponse(resp).then(Promise.reject.bind(Promise));
        return resp.json();
      })
      .then(function (body) {
        gen.templates = body.data;
        var sel = $("gen-kind");
        sel.innerHTML = "";
        var names = { poem: "诗词", story: "故事", article: "文章", ad: "广告文案", product: "商品描述" };
        body.data.forEach(function (t) {
          var o = el("option", { value: t.name, title: t.description || "" }, names[t.name] || t.description || t.name);
          sel.appendChild(o);
        });
        syncGenForm();
      })
      .catch(function (err) {
        showError("gen-error", describeError(err));
      });
  }

  function syncGenForm() {
    var kind = $("gen-kind").value;
    var t = (gen.templates || []).filter(function (x) {
      return x.name === kind;
    })[0];
    $("gen-form-label").hidden = !(t && t.takes_form);
  }

  function runGenerate() {
    showError("gen-error", "");
    var topic = $("gen-topic").value.trim();
    if (!topic) {
      showError("gen-error", "请填写主题或要求");
      return;
    }
    var body = { kind: $("gen-kind").value, topic: topic };
    if (!$("gen-form-label").hidden) body.form = $("gen-form-select").value;
    var kw = $("gen-keywords").value.split(/[,，、]/).map(function (x) {
      return x.trim();
    }).filter(Boolean);
    if (kw.length) body.keywords = kw;
    ["style", "audience"].forEach(function (k) {
      var v = $("gen-" + k).value.trim();
      if (v) body[k] = v;
    });
    var mn = parseInt($("gen-min").value, 10);
    var mx = parseInt($("gen-max").value, 10);
    if (mn) body.min_chars = mn;
    if (mx) body.max_chars = mx;
    $("gen-send").disabled = true;
    $("gen-output").textContent = "";
    $("gen-problems").innerHTML = "";
    $("gen-status").textContent = "生成中…（不满足约束时会自动重写）";
    fetch("/v1/generate", {
      method: "POST",
      headers: api.headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(body),
    })
      .then(function (resp) {
        if (!resp.ok) return errorFromResponse(resp).then(Promise.reject.bind(Promise));
        return resp.json();
      })
      .then(function (g) {
        $("gen-output").textContent = g.text;
        $("gen-status").textContent = (g.ok ? "✓ 满足全部约束" : "✗ 仍有约束未满足") + " · 第 " + g.attempts + " 稿";
        g.problems.forEach(function (p) {
          $("gen-problems").appendChild(el("li", null, p));
        });
      })
      .catch(function (err) {
        $("gen-status").textContent = "";
        showError("gen-error", describeError(err));
      })
      .then(function () {
        $("gen-send").disabled = false;
      });
  }

  function initGenerate() {
    $("gen-kind").addEventListener("change", syncGenForm);
    $("gen-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      runGenerate();
    });
  }

  function showGenerate() {
    if (!gen.templates) loadTemplates();
  }

  // ------------------------------------------------------------------------------------------------
  // Safety tab (安全): a read-only view of GET /v1/safety -- the content filter's actions per route and
  // bot, the word lists, PII masking, the audit log's settings and (for audit admins) the latest
  // flagged or blocked requests. Every server string goes in through textContent.
  // ------------------------------------------------------------------------------------------------
  var SAFETY_ACTION = { off: "关闭", flag: "标记", mask: "打码", block: "拦截" };
  var SAFETY_ROUTE = { chat: "对话 API", kb: "知识库问答", service: "客服", write: "摘要 / 写作" };
  var SAFETY_OUTCOME = { ok: "通过", blocked: "已拦截", rejected: "已拒绝", error: "出错", cancelled: "已取消" };
  var SAFETY_PII = { remote: "仅远程模型", always: "总是", never: "从不" };

  function safetyRow(table, cells, header, className) {
    var tr = el("tr", className ? { className: className } : null);
    cells.forEach(function (c) {
      tr.appendChild(el(header ? "th" : "td", null, c));
    });
    table.appendChild(tr);
    return tr;
  }

  function safetyAction(a) {
    return (SAFETY_ACTION[a] || a) + " (" + a + ")";
  }

  function renderSafety(info) {
    var cf = info.content_filter || {};
    var pii = info.pii || {};
    var audit = info.audit || {};
    $("safety-summary").textContent =
      "默认动作：" + safetyAction(cf.action) +
      "；个人信息打码：日志 " + (pii.logs ? "开" : "关") + "，存储 " + (pii.storage ? "开" : "关") +
      "，发给模型 " + (SAFETY_PII[pii.model] || pii.model) +
      "；审计日志：" + (audit.enabled ? "开（满 " + formatBytes(audit.max_bytes) + " 轮转，保留 " + audit.keep_files + " 个文件 / " + audit.keep_days + " 天）" : "关");
    var cats = (cf.categories || []).map(function (c) {
      return c.name;
    });
    var routes = $("safety-routes");
    routes.textContent = "";
    safetyRow(routes, ["范围", "输出过滤"].concat((cf.categories || []).map(function (c) {
      return c.label || c.name;
    })), true);
    function scopeRow(name, scope, cls) {
      var cells = [name, scope.output ? "是" : "否"].concat(cats.map(function (c) {
        return SAFETY_ACTION[(scope.categories || {})[c]] || (scope.categories || {})[c] || "";
      }));
      var tr = safetyRow(routes, cells, false, cls);
      tr.setAttribute("data-scope", name);
    }
    Object.keys(cf.routes || {}).forEach(function (r) {
      scopeRow(SAFETY_ROUTE[r] || r, cf.routes[r], "safety-route");
    });
    Object.keys(cf.bots || {}).forEach(function (b) {
      scopeRow("机器人 " + b, cf.bots[b], "safety-bot");
    });
    var lists = $("safety-categories");
    lists.textContent = "";
    safetyRow(lists, ["词表", "类别", "词数", "来源"], true);
    (cf.wordlists || []).forEach(function (w) {
      safetyRow(lists, [w.file, w.category, String(w.words), w.source || ""]);
    });
    var events = $("safety-events");
    events.textContent = "";
    var rows = info.events || [];
    if (rows.length) safetyRow(events, ["时间", "调用方", "路由", "结果", "类别", "片段（已打码）"], true);
    rows.forEach(function (e) {
      (e.flags || []).forEach(function (f) {
        var tr = safetyRow(events, [
          formatTime(e.ts),
          e.who,
          e.route,
          SAFETY_OUTCOME[e.outcome] || e.outcome,
          f.category + " · " + (f.stage === "output" ? "输出" : "输入") + " · " + (SAFETY_ACTION[f.action] || f.action),
          f.snippet || "",
        ]);
        tr.className = "safety-event safety-" + (f.action || "flag");
      });
    });
    $("safety-note").textContent = info.events_note ? info.events_note : rows.length ? "" : "暂无标记或拦截的请求。";
  }

  function loadSafety() {
    var box = $("safety-error");
    box.hidden = true;
    return apiJson("GET", "/v1/safety").then(renderSafety, function (err) {
      box.textContent = describeError(err);
      box.hidden = false;
    });
  }

  function initSafety() {
    $("safety-refresh").addEventListener("click", loadSafety);
  }

  var tabs = [
    { id: "chat", label: "对话", init: initChat },
    { id: "kb", label: "知识库", init: initKnowledgeBase, show: showKnowledgeBase },
    { id: "service", label: "客服", init: initService, show: showService },
    { id: "agent", label: "坐席", init: initAgent, show: showAgent },
    { id: "summarize", label: "摘要", init: initSummarize },
    { id: "generate", label: "写作", init: initGenerate, show: showGenerate },
    { id: "safety", label: "安全", init: initSafety, show: loadSafety },
  ];

  function activateTab(id) {
    var found = tabs.some(function (t) {
      return t.id === id;
    });
    if (!found) id = tabs[0].id;
    document.querySelectorAll("#tabs .tab").forEach(function (b) {
      b.setAttribute("aria-selected", b.getAttribute("data-tab") === id ? "true" : "false");
      b.tabIndex = b.getAttribute("data-tab") === id ? 0 : -1;
    });
    document.querySelectorAll(".tab-panel").forEach(function (p) {
      p.hidden = p.getAttribute("data-tab") !== id;
    });
    if (chat.settings) {
      chat.settings.tab = id;
      saveSettings();
    }
    tabs.forEach(function (t) {
      if (t.id === id && t.show) t.show();
    });
  }

  function initTabs() {
    var nav = $("tabs");
    tabs.forEach(function (t) {
      var b = el("button", { type: "button", id: "tab-" + t.id, className: "tab", role: "tab", "data-tab": t.id, "data-testid": "tab-" + t.id }, t.label);
      b.setAttribute("aria-controls", "panel-" + t.id);
      b.addEventListener("click", function () {
        activateTab(t.id);
      });
      nav.appendChild(b);
    });
    tabs.forEach(function (t) {
      if (document.querySelector('.tab-panel[data-tab="' + t.id + '"]') && t.init) t.init();
    });
    activateTab((chat.settings && chat.settings.tab) || tabs[0].id);
  }

  // exposed for debugging and tests
  window.glmkitConsole = {
    renderMarkdown: renderMarkdown,
    escapeHtml: escapeHtml,
    linkCitations: linkCitations,
    tabs: tabs,
    state: chat,
    kb: kb,
    service: svc,
    agent: agent,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initTabs);
  else initTabs();
})();
