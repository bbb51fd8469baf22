/* 坐席 tab, left column: the hand-off queue -- sessions waiting for an agent and those taken, each with its
 * wait, reason and summary. Server text goes in through textContent. */
import { bots } from "./bots.js";
import { $, asString, el, formatTime, shortId, waited } from "./dom.js";
import { reasonLabel } from "./service_thread.js";

function queueItem(agent, h, mine, actions) {
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
      actions.open(sid);
    });
    bar.appendChild(open);
  } else {
    var take = el("button", { type: "button", className: "btn btn-small btn-primary agent-take", "data-testid": "agent-take" }, "接入");
    take.disabled = agent.acting;
    take.addEventListener("click", function () {
      actions.take(sid, take);
    });
    bar.appendChild(take);
  }
  li.appendChild(bar);
  return li;
}

/**
 * The two queues of `agent` (its state in agent.js): waiting hand-offs with 接入, and taken ones (`me`'s
 * first) with 打开/查看. `actions.open(sid)` and `actions.take(sid, button)` do what the buttons say.
 */
export function drawQueue(agent, me, actions) {
  var q = $("agent-queue");
  var t = $("agent-taken");
  // polled every 3 s: leave the lists alone when nothing changed (a click in progress is not lost)
  var sig = JSON.stringify([agent.bot, agent.waiting, agent.taken, agent.current, me, agent.acting,
    agent.queueLoaded, agent.queueError, bots.loaded, Math.floor(Date.now() / 30000)]);
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
    q.appendChild(el("li", { className: "kb-list-note" }, bots.loaded || bots.error ? "没有客服机器人" : "正在加载…"));
    return;
  }
  if (!agent.queueLoaded) {
    q.appendChild(el("li", { className: "kb-list-note" }, "正在加载…"));
    return;
  }
  if (!agent.waiting.length) q.appendChild(el("li", { className: "kb-list-note" }, "没有等待接入的会话"));
  agent.waiting.forEach(function (h) {
    q.appendChild(queueItem(agent, h, false, actions));
  });
  var taken = agent.taken.slice().sort(function (a, b) {
    return (b.agent === me) - (a.agent === me);
  });
  if (!taken.length) t.appendChild(el("li", { className: "kb-list-note" }, "没有接待中的会话"));
  taken.forEach(function (h) {
    t.appendChild(queueItem(agent, h, !!me && h.agent === me, actions));
  });
}
