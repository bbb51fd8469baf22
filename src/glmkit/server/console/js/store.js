/* What the console keeps in this browser's localStorage: the keys, and reads/writes that never throw
 * (storage may be full or disabled; the console then keeps working in memory). */

export var STORE = {
  conversations: "glmkit.console.conversations.v1",
  current: "glmkit.console.current.v1",
  settings: "glmkit.console.settings.v1",
  apiKey: "glmkit.console.apiKey",
  kbCurrent: "glmkit.console.kb.current.v1",
  service: "glmkit.console.service.v1",
  agent: "glmkit.console.agent.v1",
};

export function loadJson(key, fallback) {
  try {
    var raw = window.localStorage.getItem(key);
    if (raw == null) return fallback;
    var v = JSON.parse(raw);
    return v == null ? fallback : v;
  } catch (e) {
    return fallback;
  }
}

export function saveJson(key, value) {
  try {
    window.localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch (e) {
    return false; // quota exceeded or storage disabled: keep working in memory
  }
}

export function loadString(key) {
  try {
    return window.localStorage.getItem(key) || "";
  } catch (e) {
    return "";
  }
}

export function saveString(key, value) {
  try {
    if (value) window.localStorage.setItem(key, value);
    else window.localStorage.removeItem(key);
  } catch (e) {
    /* ignore */
  }
}
