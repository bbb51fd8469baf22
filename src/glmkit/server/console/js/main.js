/* glmkit web console: plain hand-written JavaScript ES modules, no build step, no dependencies, no external
 * URLs. This entry module builds the tab bar and opens the last tab; every tab is its own module (see
 * docs/architecture.md for which file shows what). To add a tab: an entry in `tabs` below and a matching
 * <section id="panel-ID" class="tab-panel" data-tab="ID"> in index.html; its button gets id="tab-ID". */
import { agent, initAgent, showAgent } from "./agent.js";
import { initChat } from "./chat.js";
import { chat, saveSettings } from "./chat_state.js";
import { $, el } from "./dom.js";
import { initGenerate, showGenerate } from "./generate.js";
import { initKnowledgeBase, showKnowledgeBase } from "./kb.js";
import { kb } from "./kb_state.js";
import { escapeHtml, renderMarkdown } from "./markdown.js";
import { initSafety, loadSafety } from "./safety.js";
import { initService, showService, svc } from "./service.js";
import { initSummarize } from "./summarize.js";
import { linkCitations } from "./widgets.js";

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
