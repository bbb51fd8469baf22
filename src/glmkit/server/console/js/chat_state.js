/* The 对话 tab's state: conversations, the current one, the settings, the stream in flight; and how they are
 * kept in localStorage. */
import { api } from "./api.js";
import { STORE, loadJson, saveJson, loadString, saveString } from "./store.js";

export var DEFAULT_SETTINGS = { model: "", systemPrompt: "", temperature: 0.8, top_p: 0.8, max_tokens: 1024, tab: "chat" };
var TITLE_MAX = 20;
export var NEW_TITLE = "新对话";

export var chat = {
  conversations: [],
  currentId: null,
  settings: null,
  streaming: null, // {convId, msg, controller}
};

export function saveConversations() {
  saveJson(STORE.conversations, chat.conversations);
  saveString(STORE.current, chat.currentId || "");
}

export function saveSettings() {
  saveJson(STORE.settings, chat.settings);
}

export function currentConversation() {
  for (var k = 0; k < chat.conversations.length; k++) {
    if (chat.conversations[k].id === chat.currentId) return chat.conversations[k];
  }
  return null;
}

export function makeTitle(text) {
  var t = String(text).replace(/\s+/g, " ").trim();
  return t.length > TITLE_MAX ? t.slice(0, TITLE_MAX) + "…" : t || NEW_TITLE;
}

export function storedConversations() {
  var convs = loadJson(STORE.conversations, []);
  if (!Array.isArray(convs)) return [];
  return convs.filter(function (c) {
    return c && typeof c.id === "string" && Array.isArray(c.messages);
  });
}

export function loadChatState() {
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
