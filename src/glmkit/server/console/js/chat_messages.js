/* The 对话 tab's message column: the welcome screen, one element per message (markdown, tool calls,
 * errors, notes), and re-rendering a message while it streams. */
import { chat, currentConversation } from "./chat_state.js";
import { $, el, copyWithFeedback, nearBottom, prettyArgs } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

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

export function renderMessages() {
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
export function refreshMessage(msg) {
  var box = $("messages");
  var node = box.querySelector('.msg[data-id="' + msg.id + '"]');
  if (!node) return;
  var stick = nearBottom(box);
  updateMessageElement(node, msg);
  if (stick) box.scrollTop = box.scrollHeight;
}

export function updateButtons() {
  var busy = !!chat.streaming;
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}
