/* DOM and formatting helpers shared by every tab: element building (text always through textContent),
 * the toast, copy-to-clipboard, the inline error boxes, and how numbers, sizes and times are written. */

export function $(id) {
  return document.getElementById(id);
}

export function el(tag, attrs, text) {
  var node = document.createElement(tag);
  if (attrs) {
    Object.keys(attrs).forEach(function (k) {
      if (k === "className") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
  }
  if (text != null) node.textContent = text;
  return node;
}

export function uid(prefix) {
  return (prefix || "") + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
}

var toastTimer = null;
export function toast(text) {
  var t = document.querySelector(".toast");
  if (!t) {
    t = el("div", { className: "toast", role: "status" });
    document.body.appendChild(t);
  }
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(function () {
    t.hidden = true;
  }, 1400);
}

/** Copy text: async Clipboard API when allowed, else a hidden <textarea> + execCommand("copy"). */
export function copyText(text) {
  function fallback() {
    return new Promise(function (resolve, reject) {
      var ta = document.createElement("textarea");
      ta.value = text;
      ta.setAttribute("readonly", "");
      ta.style.position = "fixed";
      ta.style.top = "-1000px";
      ta.style.opacity = "0";
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      document.body.removeChild(ta);
      if (ok) resolve();
      else reject(new Error("copy failed"));
    });
  }
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text).catch(fallback);
  }
  return fallback();
}

function flashButton(btn, text) {
  var old = btn.getAttribute("data-label") || btn.textContent;
  btn.setAttribute("data-label", old);
  btn.textContent = text;
  setTimeout(function () {
    btn.textContent = old;
  }, 1200);
}

export function copyWithFeedback(btn, text) {
  copyText(text).then(
    function () {
      flashButton(btn, "已复制");
    },
    function () {
      flashButton(btn, "复制失败");
    }
  );
}

export function showError(id, text) {
  var box = $(id);
  box.textContent = text || "";
  box.hidden = !text;
}

export function nearBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
}

export function asObject(v) {
  return v && typeof v === "object" && !Array.isArray(v) ? v : {};
}

export function asString(v) {
  return typeof v === "string" ? v : "";
}

export function formatBytes(n) {
  n = +n || 0;
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
  return (n / 1024 / 1024).toFixed(1) + " MB";
}

export function formatTime(sec) {
  var d = new Date((+sec || 0) * 1000);
  if (!isFinite(d.getTime()) || !sec) return "";
  function two(x) {
    return (x < 10 ? "0" : "") + x;
  }
  return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + two(d.getHours()) + ":" + two(d.getMinutes());
}

export function formatScore(x) {
  var v = +x;
  if (!isFinite(v)) return "";
  return Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(4);
}

export function prettyArgs(s) {
  try {
    return JSON.stringify(JSON.parse(s), null, 2);
  } catch (e) {
    return s || "";
  }
}

export function percent(x) {
  var v = +x;
  return isFinite(v) ? (Math.round(v * 1000) / 10).toFixed(1) + "%" : "–";
}

export function count(x) {
  var v = +x;
  return isFinite(v) ? String(v) : "0";
}

export function clock(sec) {
  var d = new Date((+sec || 0) * 1000);
  if (!sec || !isFinite(d.getTime())) return "";
  function two(x) {
    return (x < 10 ? "0" : "") + x;
  }
  var t = two(d.getHours()) + ":" + two(d.getMinutes());
  return d.toDateString() === new Date().toDateString() ? t : two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + t;
}

export function waited(sec) {
  var s = Math.max(0, Date.now() / 1000 - (+sec || 0));
  if (!sec || !isFinite(s)) return "";
  if (s < 60) return "刚刚";
  if (s < 3600) return Math.floor(s / 60) + " 分钟前";
  if (s < 86400) return Math.floor(s / 3600) + " 小时前";
  return Math.floor(s / 86400) + " 天前";
}

export function shortId(sid) {
  sid = String(sid || "");
  return sid.length > 10 ? sid.slice(0, 8) + "…" : sid;
}

export function pretty(v) {
  if (typeof v === "string") return prettyArgs(v);
  try {
    return JSON.stringify(v, null, 2);
  } catch (e) {
    return String(v);
  }
}

export function sortedEntries(obj) {
  return Object.keys(asObject(obj))
    .map(function (k) {
      return [k, +obj[k] || 0];
    })
    .sort(function (a, b) {
      return b[1] - a[1] || (a[0] < b[0] ? -1 : 1);
    });
}
