/* 对话 tab: the conversation list, sending a message (POST /v1/chat/completions, streamed as SSE), stop, and
 * the tab's wiring. */
import { describeError, postStream, readEvents } from "./api.js";
import { renderMessages, refreshMessage, updateButtons } from "./chat_messages.js";
import { bindSettings, loadModels, readNumber } from "./chat_settings.js";
import {
  NEW_TITLE, chat, currentConversation, loadChatState, makeTitle, saveConversations, storedConversations,
} from "./chat_state.js";
import { $, el, copyWithFeedback, uid } from "./dom.js";
import { STORE } from "./store.js";

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

  postStream("/v1/chat/completions", payload, controller.signal)
    .then(function (resp) {
      return readEvents(
        resp,
        function (obj) {
          applyChunk(reply, obj);
        },
        function () {
          refreshMessage(reply);
        },
        function (obj) {
          applyChunk(reply, obj); // a server that ignored stream=true: one JSON body
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

export function initChat() {
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
