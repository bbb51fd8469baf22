/* 客服 tab (the customer's side): pick a bot, start a session, talk; each bot answer has its trace panel and
 * thumbs up/down. While a human is involved (state waiting/human) the session is polled every 2 s so the
 * agent's messages appear. What is shown is always the server's session, so a reload continues. */
import { apiJson, describeError } from "./api.js";
import { bots, fillBotSelect, loadBots, onBots, pickBot, showBotHint } from "./bots.js";
import { $, asObject, asString, el, formatTime, shortId, showError, toast } from "./dom.js";
import {
  SVC_NO_BOTS, noteElement, renderThread, sessionPath, setBadge, svcMessageElement, svcPath, welcomeElement,
} from "./service_thread.js";
import { STORE, loadJson, saveJson } from "./store.js";

var SVC_POLL_MS = 2000;

var FEEDBACK_KEEP = 500;

export var svc = {
  prefs: null, // {bot, user, sessions: {bot: sid}, feedback: {message_id: rating}} (localStorage)
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
  $("svc-bot").disabled = !bots.list.length || svc.sending;
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
        : welcomeElement("在线客服", bots.loaded || bots.error ? SVC_NO_BOTS : "正在加载客服机器人…")
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
  renderThread($("svc-messages"), svc.bot + "/" + svc.sid, svc.messages, "customer", extras, feedbackButtons);
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

export function initService() {
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
      if (bots.loaded || bots.error) loadBots();
    }, 600);
  });
  onBots(function () {
    var s = pickBot(svc.bot || svc.prefs.bot);
    fillBotSelect($("svc-bot"), s);
    showBotHint("svc-hint");
    if (s !== svc.bot) selectSvcBot(s);
    else renderSvc();
  });
  setInterval(svcPoll, SVC_POLL_MS);
  fillBotSelect($("svc-bot"), "");
  renderSvc();
}

export function showService() {
  loadBots();
  if (svc.sid) svcLoadSession();
  if (!$("svc-input").disabled) $("svc-input").focus();
}
