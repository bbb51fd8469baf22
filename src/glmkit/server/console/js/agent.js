/* 坐席 tab (the human agents' side): the hand-off queue (polled every 3 s), take a session, its full
 * history, reply, hand it back to the bot. The queue is drawn by agent_queue.js, the analytics column by
 * agent_analytics.js. */
import { apiJson, describeError } from "./api.js";
import { loadAnalytics as fetchAnalytics } from "./agent_analytics.js";
import { drawQueue } from "./agent_queue.js";
import { bots, fillBotSelect, loadBots, onBots, pickBot, showBotHint } from "./bots.js";
import { $, asObject, asString, formatTime, shortId, showError, toast } from "./dom.js";
import { noteElement, renderThread, sessionPath, setBadge, svcPath, welcomeElement } from "./service_thread.js";
import { STORE, loadJson, saveJson } from "./store.js";

var AGENT_POLL_MS = 3000;
var ANALYTICS_EVERY = 5; // agent polls between two analytics refreshes (~15 s)

export var agent = {
  prefs: null, // {name, bot, session} (localStorage)
  bot: "",
  waiting: [],
  taken: [],
  queueLoaded: false,
  queueError: "",
  queueSeq: 0,
  queueBusy: false,
  queueSig: "",
  current: "", // the session open in the middle column
  session: null,
  messages: [],
  loadSeq: 0,
  historyBusy: false,
  sending: false,
  acting: false, // take / release in flight
  ticks: 0,
};

function loadAgentPrefs() {
  var p = asObject(loadJson(STORE.agent, {}));
  return { name: asString(p.name), bot: asString(p.bot), session: asString(p.session) };
}

function saveAgentPrefs() {
  saveJson(STORE.agent, agent.prefs);
}

function agentName() {
  return $("agent-name").value.trim();
}

function selectAgentBot(name) {
  var changed = (name || "") !== agent.bot;
  agent.bot = name || "";
  if (agent.bot) {
    agent.prefs.bot = agent.bot;
    saveAgentPrefs();
  }
  if (changed) {
    agent.waiting = [];
    agent.taken = [];
    agent.queueLoaded = false;
    agent.queueError = "";
    agent.queueSeq++;
    openAgentSession(agent.bot && agent.prefs.session && !agent.current ? agent.prefs.session : "");
  }
  renderAgent();
  if (agent.bot && !$("panel-agent").hidden) {
    loadQueue();
    loadAnalytics();
  }
}

function loadQueue() {
  var bot = agent.bot;
  if (!bot) return Promise.resolve();
  var seq = ++agent.queueSeq;
  agent.queueBusy = true;
  return Promise.all([
    apiJson("GET", svcPath(bot, "/handoffs?status=waiting")),
    apiJson("GET", svcPath(bot, "/handoffs?status=taken")),
  ])
    .then(
      function (res) {
        if (seq !== agent.queueSeq || bot !== agent.bot) return;
        agent.waiting = (res[0] && res[0].data) || [];
        agent.taken = (res[1] && res[1].data) || [];
        agent.queueLoaded = true;
        agent.queueError = "";
        renderQueue();
      },
      function (err) {
        if (seq !== agent.queueSeq || bot !== agent.bot) return;
        agent.queueError = describeError(err);
        renderQueue();
      }
    )
    .then(function () {
      if (seq === agent.queueSeq) agent.queueBusy = false;
    });
}

// polled every 3 s; the lists are redrawn only when something in them changed
var queueActions = { open: openAgentSession, take: takeSession };

function renderQueue() {
  drawQueue(agent, agentName(), queueActions);
}

function openAgentSession(sid) {
  agent.current = sid || "";
  agent.prefs.session = agent.current;
  saveAgentPrefs();
  agent.session = null;
  agent.messages = [];
  agent.loadSeq++;
  showError("agent-error", "");
  renderAgent();
  if (agent.current) loadAgentSession();
}

function loadAgentSession() {
  var bot = agent.bot;
  var sid = agent.current;
  if (!bot || !sid) return Promise.resolve();
  var seq = ++agent.loadSeq;
  agent.historyBusy = true;
  return apiJson("GET", sessionPath(bot, sid))
    .then(
      function (s) {
        if (seq !== agent.loadSeq || bot !== agent.bot || sid !== agent.current) return;
        agent.session = asObject(s);
        agent.messages = Array.isArray(s.messages) ? s.messages : [];
        renderAgent();
      },
      function (err) {
        if (seq !== agent.loadSeq || bot !== agent.bot || sid !== agent.current) return;
        if (err.status === 404) openAgentSession("");
        else showError("agent-error", "无法获取会话：" + describeError(err));
      }
    )
    .then(function () {
      if (seq === agent.loadSeq) agent.historyBusy = false;
    });
}

function needName() {
  if (agentName()) return false;
  showError("agent-side-error", "请先填写坐席名称");
  $("agent-name").focus();
  return true;
}

function takeSession(sid, btn) {
  if (agent.acting || !agent.bot || needName()) return;
  var bot = agent.bot;
  agent.acting = true;
  btn.disabled = true;
  showError("agent-side-error", "");
  apiJson("POST", svcPath(bot, "/handoffs/" + encodeURIComponent(sid) + "/take"), { agent: agentName() })
    .then(
      function () {
        if (bot !== agent.bot) return;
        toast("已接入会话 " + shortId(sid));
        openAgentSession(sid);
        $("agent-input").focus();
      },
      function (err) {
        showError("agent-side-error", "接入失败：" + describeError(err));
      }
    )
    .then(function () {
      agent.acting = false;
      loadQueue();
      loadAnalytics();
    });
}

function canReply() {
  var s = agent.session;
  return !!(s && s.state === "human" && s.agent && s.agent === agentName());
}

function agentSend() {
  if (agent.sending || !canReply()) return;
  var input = $("agent-input");
  var text = input.value.trim();
  if (!text) {
    input.focus();
    return;
  }
  var bot = agent.bot;
  var sid = agent.current;
  agent.sending = true;
  input.value = "";
  showError("agent-error", "");
  updateAgentButtons();
  apiJson("POST", sessionPath(bot, sid, "/agent"), { agent: agentName(), text: text })
    .then(
      function () {
        return loadAgentSession();
      },
      function (err) {
        showError("agent-error", "发送失败：" + describeError(err));
        if (!input.value) input.value = text;
      }
    )
    .then(function () {
      agent.sending = false;
      updateAgentButtons();
    });
}

function releaseSession() {
  if (agent.acting || !canReply()) return;
  var bot = agent.bot;
  var sid = agent.current;
  agent.acting = true;
  updateAgentButtons();
  showError("agent-error", "");
  apiJson("POST", svcPath(bot, "/handoffs/" + encodeURIComponent(sid) + "/release"), { agent: agentName() })
    .then(
      function () {
        toast("已交还机器人");
        return loadAgentSession();
      },
      function (err) {
        showError("agent-error", "交还失败：" + describeError(err));
      }
    )
    .then(function () {
      agent.acting = false;
      updateAgentButtons();
      loadQueue();
      loadAnalytics();
    });
}

function agentHint() {
  var s = agent.session;
  if (!agent.current) return "在左侧队列中接入一个会话";
  if (!s) return "正在加载会话…";
  if (s.state === "waiting") return "该会话正在等待接入";
  if (s.state === "bot") return "会话已由机器人接待，无需人工回复";
  if (s.agent && s.agent !== agentName()) return "该会话由 " + s.agent + " 接待，只能查看";
  return "以 " + agentName() + " 的身份回复客户 · Enter 发送";
}

function updateAgentButtons() {
  var ok = canReply();
  $("agent-input").disabled = !ok;
  $("agent-send").disabled = !ok || agent.sending;
  $("agent-release").disabled = !ok || agent.acting;
  $("agent-bot").disabled = !bots.list.length;
  $("agent-hint-bar").textContent = agentHint();
}

function renderAgent() {
  var s = agent.session;
  var state = s && asString(s.state);
  setBadge($("agent-state"), state, s && asString(s.agent));
  $("agent-title").textContent = agent.current ? "会话 " + shortId(agent.current) : "坐席工作台";
  $("agent-title").title = agent.current;
  var meta = [];
  if (s) {
    if (s.user) meta.push("客户 " + s.user);
    if (s.group) meta.push("分组 " + s.group);
    if (s.created) meta.push("开始于 " + formatTime(s.created));
  }
  $("agent-meta").textContent = meta.join(" · ");
  var extras = [];
  if (!agent.current) extras.push(welcomeElement("坐席工作台", "在左侧填写坐席名称，接入等待中的会话：这里会显示客户与机器人的全部对话，回复后客户那边会实时看到。"));
  else if (s && state === "bot") extras.push(noteElement("会话已交还机器人", "svc-human-note"));
  renderThread($("agent-history"), agent.bot + "/" + agent.current, agent.messages, "agent", extras);
  renderQueue();
  updateAgentButtons();
}

function agentPoll() {
  if ($("panel-agent").hidden || !agent.bot) return;
  if (!agent.queueBusy) loadQueue();
  if (agent.current && !agent.historyBusy && !agent.sending) loadAgentSession();
  if (++agent.ticks % ANALYTICS_EVERY === 0) loadAnalytics();
}

function loadAnalytics() {
  return fetchAnalytics(agent.bot, function (bot) {
    return bot === agent.bot;
  });
}

export function initAgent() {
  agent.prefs = loadAgentPrefs();
  agent.current = "";
  var name = $("agent-name");
  name.value = agent.prefs.name;
  name.addEventListener("input", function () {
    agent.prefs.name = name.value.trim();
    saveAgentPrefs();
    if (agent.prefs.name) showError("agent-side-error", "");
    renderQueue();
    updateAgentButtons();
  });
  $("agent-bot").addEventListener("change", function () {
    agent.prefs.session = "";
    agent.current = "";
    selectAgentBot($("agent-bot").value);
  });
  $("agent-refresh").addEventListener("click", function () {
    loadBots();
    loadQueue();
  });
  $("analytics-refresh").addEventListener("click", loadAnalytics);
  $("agent-composer").addEventListener("submit", function (ev) {
    ev.preventDefault();
    agentSend();
  });
  $("agent-release").addEventListener("click", releaseSession);
  $("agent-input").addEventListener("keydown", function (ev) {
    if (ev.isComposing || ev.keyCode === 229) return;
    if (ev.key === "Enter" && !ev.shiftKey && !ev.altKey) {
      ev.preventDefault();
      agentSend();
    }
  });
  onBots(function () {
    var a = pickBot(agent.bot || agent.prefs.bot);
    fillBotSelect($("agent-bot"), a);
    showBotHint("agent-hint");
    if (a !== agent.bot) selectAgentBot(a);
    else renderAgent();
  });
  setInterval(agentPoll, AGENT_POLL_MS);
  fillBotSelect($("agent-bot"), "");
  renderAgent();
}

export function showAgent() {
  loadBots();
  if (agent.bot) {
    loadQueue();
    loadAnalytics();
    if (agent.current) loadAgentSession();
  }
}
