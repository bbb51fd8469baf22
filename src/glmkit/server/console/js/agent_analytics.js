/* 坐席 tab, right column: the bot's analytics (GET /v1/service/{bot}/analytics) as a table and a bar chart of
 * routes and intents. */
import { apiJson, describeError } from "./api.js";
import { $, asObject, count, el, percent, showError, sortedEntries } from "./dom.js";
import { routeLabel, svcPath } from "./service_thread.js";
import { barChart } from "./widgets.js";

var SVC_ROUTE_COLOR = {
  faq: "#22a06b",
  kb: "#2f6bff",
  tool: "#7c4dff",
  chat: "#5b7083",
  clarify: "#e8a317",
  handoff: "#d93026",
  held_by_human: "#f07c2b",
};

var seqNo = 0;

/** Fetch and show `bot`'s analytics; `isCurrent(bot)` says whether the answer is still wanted. */
export function loadAnalytics(bot, isCurrent) {
  if (!bot) return Promise.resolve();
  var seq = ++seqNo;
  return apiJson("GET", svcPath(bot, "/analytics")).then(
    function (a) {
      if (seq !== seqNo || !isCurrent(bot)) return;
      showError("analytics-error", "");
      renderAnalytics(asObject(a));
    },
    function (err) {
      if (seq !== seqNo || !isCurrent(bot)) return;
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
  barChart($("analytics-chart"), [
    { key: "route", title: "路由分布", empty: "还没有回答", items: routes.map(function (r) {
      return { key: r[0], label: routeLabel(r[0]), value: r[1], color: SVC_ROUTE_COLOR[r[0]] };
    }) },
    { key: "intent", title: "意图分布", empty: "暂无意图数据（未配置意图模型或尚无回答）", items: intents.map(function (r) {
      return { key: r[0], label: r[0], value: r[1] };
    }) },
  ]);
}
