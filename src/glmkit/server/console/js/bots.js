/* The customer-service bots (GET /v1/service), shared by 客服 and 坐席: one list that either tab may reload;
 * each tab registers with `onBots` to fill its own select and pick its bot when the list changes. */
import { apiJson, describeError } from "./api.js";
import { $, asString, el } from "./dom.js";
import { SVC_NO_BOTS } from "./service_thread.js";

export var bots = { list: [], loaded: false, error: "", seq: 0 };
var listeners = [];

/** `fn()` runs each time the list has been (re)loaded, or failed to load. */
export function onBots(fn) {
  listeners.push(fn);
}

export function loadBots() {
  var seq = ++bots.seq;
  return apiJson("GET", "/v1/service").then(
    function (data) {
      if (seq !== bots.seq) return;
      bots.list = ((data && data.data) || [])
        .map(function (b) {
          return b && asString(b.name);
        })
        .filter(Boolean);
      bots.loaded = true;
      bots.error = "";
      listeners.forEach(function (fn) {
        fn();
      });
    },
    function (err) {
      if (seq !== bots.seq) return;
      bots.error = describeError(err);
      listeners.forEach(function (fn) {
        fn();
      });
    }
  );
}

export function fillBotSelect(select, current) {
  select.textContent = "";
  if (!bots.list.length) {
    select.appendChild(el("option", { value: "" }, bots.loaded ? "（没有客服机器人）" : bots.error ? "（无法获取）" : "正在加载…"));
    select.value = "";
    return;
  }
  bots.list.forEach(function (n) {
    select.appendChild(el("option", { value: n }, n));
  });
  select.value = current;
}

/** `wanted` if it is still a bot, else the first bot, else "". */
export function pickBot(wanted) {
  return (
    [wanted]
      .concat(bots.list)
      .filter(function (n) {
        return n && bots.list.indexOf(n) >= 0;
      })[0] || ""
  );
}

/** The hint box `id` says why there is no bot to talk to (none loaded, or the list failed). */
export function showBotHint(id) {
  var hint = bots.error ? "无法获取客服机器人列表：" + bots.error : bots.loaded && !bots.list.length ? SVC_NO_BOTS : "";
  $(id).textContent = hint;
  $(id).hidden = !hint;
  $(id).classList.toggle("err", !!bots.error);
}
