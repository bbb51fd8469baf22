/* 安全 tab: a read-only view of GET /v1/safety -- the content filter's actions per route and bot, the word
 * lists, PII masking, the audit log's settings and (for audit admins) the latest flagged or blocked
 * requests. Every server string goes in through textContent. */
import { apiJson, describeError } from "./api.js";
import { $, formatBytes, formatTime } from "./dom.js";
import { tableRow } from "./widgets.js";

var SAFETY_ACTION = { off: "关闭", flag: "标记", mask: "打码", block: "拦截" };
var SAFETY_ROUTE = { chat: "对话 API", kb: "知识库问答", service: "客服", write: "摘要 / 写作" };
var SAFETY_OUTCOME = { ok: "通过", blocked: "已拦截", rejected: "已拒绝", error: "出错", cancelled: "已取消" };
var SAFETY_PII = { remote: "仅远程模型", always: "总是", never: "从不" };

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
  tableRow(routes, ["范围", "输出过滤"].concat((cf.categories || []).map(function (c) {
    return c.label || c.name;
  })), true);
  function scopeRow(name, scope, cls) {
    var cells = [name, scope.output ? "是" : "否"].concat(cats.map(function (c) {
      return SAFETY_ACTION[(scope.categories || {})[c]] || (scope.categories || {})[c] || "";
    }));
    var tr = tableRow(routes, cells, false, cls);
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
  tableRow(lists, ["词表", "类别", "词数", "来源"], true);
  (cf.wordlists || []).forEach(function (w) {
    tableRow(lists, [w.file, w.category, String(w.words), w.source || ""]);
  });
  var events = $("safety-events");
  events.textContent = "";
  var rows = info.events || [];
  if (rows.length) tableRow(events, ["时间", "调用方", "路由", "结果", "类别", "片段（已打码）"], true);
  rows.forEach(function (e) {
    (e.flags || []).forEach(function (f) {
      var tr = tableRow(events, [
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

export function loadSafety() {
  var box = $("safety-error");
  box.hidden = true;
  return apiJson("GET", "/v1/safety").then(renderSafety, function (err) {
    box.textContent = describeError(err);
    box.hidden = false;
  });
}

export function initSafety() {
  $("safety-refresh").addEventListener("click", loadSafety);
}
