/* The 对话 tab's right column: model list (GET /v1/models), system prompt, sampling numbers and the API key
 * (used by every tab), and the server status in the top bar. */
import { api, apiJson, describeError } from "./api.js";
import { chat, DEFAULT_SETTINGS, saveSettings } from "./chat_state.js";
import { $, el, toast } from "./dom.js";
import { STORE, saveString } from "./store.js";

function numberSetting(id, key, min, max, isInt) {
  var input = $(id);
  input.value = chat.settings[key];
  input.addEventListener("input", function () {
    var v = isInt ? parseInt(input.value, 10) : parseFloat(input.value);
    if (isFinite(v) && v >= min && v <= max) {
      chat.settings[key] = v;
      saveSettings();
    }
  });
  input.addEventListener("change", function () {
    var v = isInt ? parseInt(input.value, 10) : parseFloat(input.value);
    if (!isFinite(v)) v = DEFAULT_SETTINGS[key];
    v = Math.min(max, Math.max(min, v));
    chat.settings[key] = v;
    input.value = v;
    saveSettings();
  });
}

export function readNumber(id, key, min, max, isInt) {
  var raw = $(id).value;
  var v = isInt ? parseInt(raw, 10) : parseFloat(raw);
  if (!isFinite(v)) v = chat.settings[key];
  if (!isFinite(v)) v = DEFAULT_SETTINGS[key];
  return Math.min(max, Math.max(min, v));
}

export function setStatus(text, kind) {
  var s = $("server-status");
  s.textContent = text;
  s.title = text;
  s.className = "server-status" + (kind ? " " + kind : "");
}

var modelsRequest = 0;
export function loadModels() {
  var seq = ++modelsRequest;
  var select = $("model-select");
  setStatus("正在获取模型列表…");
  return apiJson("GET", "/v1/models")
    .then(function (data) {
      if (seq !== modelsRequest) return;
      var ids = ((data && data.data) || [])
        .map(function (m) {
          return m && m.id;
        })
        .filter(Boolean);
      select.textContent = "";
      ids.forEach(function (id) {
        select.appendChild(el("option", { value: id }, id));
      });
      if (!ids.length) {
        select.appendChild(el("option", { value: "" }, "（无可用模型）"));
        setStatus("已连接 · 没有可用模型", "err");
        return;
      }
      select.value = ids.indexOf(chat.settings.model) >= 0 ? chat.settings.model : ids[0];
      chat.settings.model = select.value;
      saveSettings();
      setStatus("已连接 · " + ids.length + " 个模型", "ok");
    })
    .catch(function (err) {
      if (seq !== modelsRequest) return;
      select.textContent = "";
      var keep = chat.settings.model;
      select.appendChild(el("option", { value: keep }, keep || "（未获取到模型）"));
      setStatus("无法获取模型列表：" + describeError(err).split("\n")[0], "err");
    });
}

export function bindSettings() {
  var select = $("model-select");
  select.addEventListener("change", function () {
    chat.settings.model = select.value;
    saveSettings();
  });
  $("refresh-models").addEventListener("click", loadModels);

  var sys = $("system-prompt");
  sys.value = chat.settings.systemPrompt || "";
  sys.addEventListener("input", function () {
    chat.settings.systemPrompt = sys.value;
    saveSettings();
  });

  numberSetting("temperature", "temperature", 0, 2, false);
  numberSetting("top-p", "top_p", 0, 1, false);
  numberSetting("max-tokens", "max_tokens", 1, 1000000, true);

  var key = $("api-key");
  key.value = api.key;
  var keyTimer = null;
  key.addEventListener("input", function () {
    api.key = key.value.trim();
    saveString(STORE.apiKey, api.key);
    clearTimeout(keyTimer);
    keyTimer = setTimeout(loadModels, 500);
  });

  $("reset-settings").addEventListener("click", function () {
    var model = chat.settings.model;
    var tab = chat.settings.tab;
    chat.settings = JSON.parse(JSON.stringify(DEFAULT_SETTINGS));
    chat.settings.model = model;
    chat.settings.tab = tab;
    saveSettings();
    sys.value = "";
    $("temperature").value = chat.settings.temperature;
    $("top-p").value = chat.settings.top_p;
    $("max-tokens").value = chat.settings.max_tokens;
    toast("已恢复默认设置");
  });
}
