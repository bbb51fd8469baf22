/* The API client: the optional `Authorization: Bearer KEY`, JSON requests, SSE reading, and one way of
 * turning a failed response into a readable message ({"error": {...}} from OpenAI-style routes, {"detail"}
 * from FastAPI) so every tab shows errors alike. */

export var api = {
  key: "",
  headers: function (extra) {
    var h = { Accept: "application/json" };
    if (extra) Object.keys(extra).forEach(function (k) {
      h[k] = extra[k];
    });
    if (this.key) h.Authorization = "Bearer " + this.key;
    return h;
  },
};

/** A readable message out of an error response: {"error": {"message"}} (OpenAI) or {"detail"} (FastAPI). */
export function errorFromResponse(resp) {
  return resp.text().then(
    function (body) {
      var msg = "";
      try {
        var j = JSON.parse(body);
        if (j && j.error) msg = typeof j.error === "string" ? j.error : j.error.message || JSON.stringify(j.error);
        else if (j && j.detail) msg = typeof j.detail === "string" ? j.detail : JSON.stringify(j.detail);
        else if (j && j.message) msg = String(j.message);
      } catch (e) {
        msg = (body || "").trim().slice(0, 500);
      }
      var head = "HTTP " + resp.status + (resp.statusText ? " " + resp.statusText : "");
      var err = new Error(msg ? head + "：" + msg : head);
      err.status = resp.status;
      return err;
    },
    function () {
      var err = new Error("HTTP " + resp.status);
      err.status = resp.status;
      return err;
    }
  );
}

export function describeError(err) {
  if (!err) return "未知错误";
  if (err instanceof TypeError && /fetch|network|load/i.test(err.message || "")) {
    return "网络错误：无法连接服务器（" + err.message + "）";
  }
  var msg = err.message || String(err);
  if (err.status === 401 || err.status === 403) msg += "\n请检查右侧的 API Key 设置。";
  return msg;
}

/**
 * Read an OpenAI SSE stream: `data: {json}` lines, `data: [DONE]` at the end. Lines may be split across
 * network chunks, so keep the unfinished tail in a buffer. `onEvent(obj)` gets every parsed chunk;
 * `onBatch()` runs after each network read (to re-render once per read, not once per line).
 */
export function readSse(body, onEvent, onBatch) {
  var reader = body.getReader();
  var decoder = new TextDecoder("utf-8");
  var buf = "";
  var finished = false;

  function handleLine(line) {
    if (line.slice(0, 5) !== "data:") return; // comments (": ping"), event:, id:, retry:
    var payload = line.slice(5).trim();
    if (!payload) return;
    if (payload === "[DONE]") {
      finished = true;
      return;
    }
    var obj;
    try {
      obj = JSON.parse(payload);
    } catch (e) {
      return; // tolerate a malformed line rather than losing the whole answer
    }
    onEvent(obj);
  }

  function pump() {
    return reader.read().then(function (r) {
      if (r.done) {
        buf += decoder.decode();
        if (buf) handleLine(buf);
        buf = "";
        onBatch();
        return;
      }
      buf += decoder.decode(r.value, { stream: true });
      var lines = buf.split(/\r\n|\n|\r/);
      buf = lines.pop();
      for (var k = 0; k < lines.length && !finished; k++) handleLine(lines[k]);
      onBatch();
      if (finished) {
        reader.cancel().catch(function () {});
        return;
      }
      return pump();
    });
  }
  return pump();
}

/**
 * fetch() with the console's headers (`opts.headers` adds to them): resolves with the response when it is
 * ok, rejects with a readable Error (its `status` set) otherwise. Every request of every tab goes through
 * here, so a failure reads the same everywhere (through `describeError`).
 */
export function apiFetch(path, opts) {
  opts = opts || {};
  var init = { method: opts.method || "GET", headers: api.headers(opts.headers || null) };
  if (opts.body !== undefined) init.body = opts.body;
  if (opts.signal) init.signal = opts.signal;
  return fetch(path, init).then(function (resp) {
    if (!resp.ok) return errorFromResponse(resp).then(Promise.reject.bind(Promise));
    return resp;
  });
}

/** JSON request with the console's headers; rejects with a readable Error on 4xx/5xx. */
export function apiJson(method, path, body) {
  var json = body !== undefined;
  return apiFetch(path, {
    method: method,
    headers: json ? { "Content-Type": "application/json" } : null,
    body: json ? JSON.stringify(body) : undefined,
  }).then(function (resp) {
    return resp.json();
  });
}

/** POST `body` as JSON asking for an SSE stream (`signal` aborts it). */
export function postStream(path, body, signal) {
  return apiFetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal: signal,
  });
}

/**
 * Read a streamed answer: SSE events through `readSse`, or -- from a server that ignored stream=true -- one
 * JSON body handed to `onJson`.
 */
export function readEvents(resp, onEvent, onBatch, onJson) {
  var type = resp.headers.get("content-type") || "";
  if (!resp.body || type.indexOf("application/json") >= 0) return resp.json().then(onJson);
  return readSse(resp.body, onEvent, onBatch);
}
