/* What 客服 and 坐席 both show: a session's messages (kept across polls so an open trace stays open), the
 * "为什么这样回答" trace panel, the state badge, labels for routes and hand-off reasons, and the paths
 * under /v1/service. Server text goes in through textContent, or renderMarkdown for bot/agent answers. */
import { asObject, asString, clock, count, el, nearBottom, percent, pretty } from "./dom.js";
import { renderMarkdown } from "./markdown.js";
import { sourceLine } from "./widgets.js";

export var SVC_NO_BOTS = "启动服务时用 --bot CONFIG 加载客服机器人";
export var SVC_ROUTE = {
  faq: "常见问题",
  kb: "知识库",
  tool: "工具调用",
  chat: "模型对话",
  clarify: "澄清追问",
  handoff: "转人工",
  held_by_human: "人工处理中",
  human: "人工回复",
};

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

export function svcPath(bot, rest) {
  return "/v1/service/" + encodeURIComponent(bot) + (rest || "");
}

export function sessionPath(bot, sid, rest) {
  return svcPath(bot, "/sessions/" + encodeURIComponent(sid) + (rest || ""));
}

export function routeLabel(route) {
  return SVC_ROUTE[route] || route || "?";
}

export function reasonLabel(reason) {
  var r = String(reason || "");
  for (var k = 0; k < SVC_REASON.length; k++) if (SVC_REASON[k][0].test(r)) return SVC_REASON[k][1];
  return r || "转人工";
}

export function setBadge(node, state, agentName) {
  node.hidden = !state;
  node.setAttribute("data-state", state || "");
  node.className = "svc-state" + (state ? " state-" + state : "");
  var text = SVC_STATE[state] || state || "";
  if (state === "human" && agentName) text += " · " + agentName;
  node.textContent = text;
}

// ---- the "为什么这样回答" panel ----
export function traceElement(tr) {
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

/** One message of a session as `view` ("customer" or "agent") sees it; `feedback(m)` adds buttons under bot answers. */
export function svcMessageElement(m, view, feedback) {
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
  if (role === "assistant" && (m.trace || (feedback && m.id))) {
    var foot = el("div", { className: "svc-foot" });
    if (m.trace) foot.appendChild(traceElement(tr));
    else foot.appendChild(el("span", { className: "spacer" }));
    if (feedback && m.id) foot.appendChild(feedback(m));
    main.appendChild(foot);
  }
  node.appendChild(main);
  return node;
}

/**
 * Show `messages` (the server's, append-only) in `box`: nodes already shown are kept (so an open trace
 * panel stays open while polling); the transient lines (`extras`: sending, notes) are redrawn after them.
 */
export function renderThread(box, key, messages, view, extras, feedback) {
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
    box.appendChild(svcMessageElement(messages[j], view, feedback));
    stick = true;
  }
  (extras || []).forEach(function (n) {
    n.classList.add("svc-transient");
    box.appendChild(n);
  });
  if (stick) box.scrollTop = box.scrollHeight;
}

export function noteElement(text, cls) {
  return el("div", { className: "svc-note" + (cls ? " " + cls : "") }, text);
}

export function welcomeElement(title, text) {
  var w = el("div", { className: "welcome svc-welcome" });
  w.appendChild(el("h2", null, title));
  w.appendChild(el("p", null, text));
  return w;
}
