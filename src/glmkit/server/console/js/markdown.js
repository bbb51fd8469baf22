/* Markdown (safe): every piece of text is escaped BEFORE markup is added, so model output can never
 * inject HTML; links are only made for http(s) URLs. Used by chat, 知识库, 客服/坐席 and 摘要. */

var ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, function (c) {
    return ESC[c];
  });
}

var HOLD = "\u0000"; // placeholder delimiter; stripped from input so it cannot be forged

function anchor(hrefEscaped, labelHtml) {
  return '<a href="' + hrefEscaped + '" target="_blank" rel="noopener noreferrer nofollow">' + labelHtml + "</a>";
}

/** bold / italic / strikethrough on an already escaped string */
function emphasis(s) {
  s = s.replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>");
  s = s.replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>");
  s = s.replace(/\*(?=[^\s*])([^*\n]*?[^\s*])\*/g, "<em>$1</em>");
  s = s.replace(/(^|[^\w])_(?=[^\s_])([^_\n]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>");
  s = s.replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
  return s;
}

/** One line (or a few joined lines) of inline markdown -> HTML. */
function renderInline(raw) {
  var slots = [];
  function hold(html) {
    return HOLD + (slots.push(html) - 1) + HOLD;
  }
  var s = escapeHtml(String(raw).split(HOLD).join(""));
  // inline code first: nothing inside is interpreted
  s = s.replace(/``([^`]|[^`][\s\S]*?[^`])``/g, function (m, code) {
    return hold('<code class="inline">' + code.trim() + "</code>");
  });
  s = s.replace(/`([^`\n]+)`/g, function (m, code) {
    return hold('<code class="inline">' + code + "</code>");
  });
  // [label](http(s)://url) -- other schemes (javascript:, data:, ...) stay plain text
  s = s.replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)]+)(?:\s+&quot;[^\n]*?&quot;)?\)/gi, function (m, label, url) {
    return hold(anchor(url, emphasis(label)));
  });
  // bare http(s) URLs; the text is escaped, so stop at entities and at non-ASCII (e.g. 。)
  s = s.replace(/https?:\/\/[A-Za-z0-9\-._~:/?#[\]@!$&()*+,;=%]+/gi, function (url) {
    var tail = "";
    var ent = url.search(/&(?:lt|gt|quot|#39);/);
    if (ent >= 0) {
      tail = url.slice(ent);
      url = url.slice(0, ent);
    }
    var trail = url.match(/[.,;:!?)\]]+$/);
    if (trail) {
      tail = trail[0] + tail;
      url = url.slice(0, -trail[0].length);
    }
    if (!/^https?:\/\/[^/]+/i.test(url)) return url + tail;
    return hold(anchor(url, url)) + tail;
  });
  s = emphasis(s);
  var guard = 0;
  var re = new RegExp(HOLD + "(\\d+)" + HOLD, "g");
  while (s.indexOf(HOLD) >= 0 && guard++ < 8) {
    s = s.replace(re, function (m, i) {
      return slots[+i] == null ? "" : slots[+i];
    });
  }
  return s.split(HOLD).join("");
}

var RE_FENCE = /^(\s*)(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
var RE_HEADING = /^\s{0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
var RE_HR = /^\s{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
var RE_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;
var RE_QUOTE = /^\s{0,3}>[ \t]?(.*)$/;
var RE_TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

function indentOf(line) {
  var m = line.match(/^[ \t]*/)[0];
  return m.replace(/\t/g, "    ").length;
}

function dedent(lines) {
  var min = Infinity;
  lines.forEach(function (l) {
    if (l.trim()) min = Math.min(min, indentOf(l));
  });
  if (!isFinite(min) || min === 0) return lines;
  return lines.map(function (l) {
    return l.replace(/\t/g, "    ").slice(Math.min(min, indentOf(l)));
  });
}

function codeBlock(code, lang) {
  var l = String(lang || "")
    .replace(/[^\w+#.-]/g, "")
    .slice(0, 24);
  return (
    '<div class="code-block"><div class="code-head"><span class="code-lang">' +
    escapeHtml(l || "text") +
    '</span><button type="button" class="copy-code" data-testid="copy-code">复制代码</button></div><pre><code' +
    (l ? ' class="language-' + escapeHtml(l.toLowerCase()) + '"' : "") +
    ">" +
    escapeHtml(code) +
    "</code></pre></div>"
  );
}

function isFenceClose(line, fence) {
  var t = line.trim();
  if (t.length < fence.length || t[0] !== fence[0]) return false;
  for (var k = 0; k < t.length; k++) if (t[k] !== fence[0]) return false;
  return true;
}

function splitRow(line) {
  var t = line.trim();
  if (t[0] === "|") t = t.slice(1);
  if (t[t.length - 1] === "|" && t[t.length - 2] !== "\\") t = t.slice(0, -1);
  return t.split(/(?<!\\)\|/).map(function (c) {
    return c.trim().replace(/\\\|/g, "|");
  });
}

function renderTable(header, aligns, rows) {
  function cell(tag, text, k) {
    var a = aligns[k];
    return "<" + tag + (a ? ' style="text-align:' + a + '"' : "") + ">" + renderInline(text) + "</" + tag + ">";
  }
  var h = "<table><thead><tr>";
  header.forEach(function (c, k) {
    h += cell("th", c, k);
  });
  h += "</tr></thead><tbody>";
  rows.forEach(function (r) {
    h += "<tr>";
    for (var k = 0; k < header.length; k++) h += cell("td", r[k] || "", k);
    h += "</tr>";
  });
  return h + "</tbody></table>";
}

function renderList(block, depth) {
  var base = indentOf(block[0]);
  var items = [];
  var fence = null;
  block.forEach(function (line) {
    var m = fence ? null : line.match(RE_ITEM);
    if (m && indentOf(line) <= base + 1 && !RE_HR.test(line)) {
      var marker = m[2];
      items.push({ ordered: /\d/.test(marker), num: parseInt(marker, 10), text: m[3], sub: [] });
      return;
    }
    if (items.length) items[items.length - 1].sub.push(line);
    var f = line.match(RE_FENCE);
    if (fence) {
      if (isFenceClose(line, fence)) fence = null;
    } else if (f) {
      fence = f[2];
    }
  });
  var html = "";
  var k = 0;
  while (k < items.length) {
    var ordered = items[k].ordered;
    var run = [];
    while (k < items.length && items[k].ordered === ordered) run.push(items[k++]);
    if (ordered) html += run[0].num !== 1 && run[0].num >= 0 ? '<ol start="' + run[0].num + '">' : "<ol>";
    else html += "<ul>";
    run.forEach(function (it) {
      var sub = it.sub.some(function (l) {
        return l.trim();
      })
        ? renderBlocks(dedent(it.sub), depth + 1)
        : "";
      html += "<li>" + renderInline(it.text) + sub + "</li>";
    });
    html += ordered ? "</ol>" : "</ul>";
  }
  return html;
}

function startsBlock(line) {
  return RE_FENCE.test(line) || RE_HEADING.test(line) || RE_HR.test(line) || RE_ITEM.test(line) || RE_QUOTE.test(line);
}

function renderBlocks(lines, depth) {
  if (depth > 12) return "<p>" + escapeHtml(lines.join("\n")).replace(/\n/g, "<br>") + "</p>";
  var out = [];
  var para = [];
  function flush() {
    if (para.length) {
      out.push("<p>" + para.map(renderInline).join("<br>") + "</p>");
      para = [];
    }
  }
  var i = 0;
  while (i < lines.length) {
    var line = lines[i];
    var m;
    if (!line.trim()) {
      flush();
      i++;
      continue;
    }
    // fenced code block (an unclosed fence runs to the end: that is what streaming looks like)
    if ((m = line.match(RE_FENCE))) {
      flush();
      var indent = m[1].replace(/\t/g, "    ").length;
      var fence = m[2];
      var body = [];
      i++;
      while (i < lines.length && !isFenceClose(lines[i], fence)) {
        var l = lines[i].replace(/\t/g, "    ");
        body.push(l.slice(Math.min(indent, indentOf(l))));
        i++;
      }
      i++; // closing fence
      out.push(codeBlock(body.join("\n"), m[3]));
      continue;
    }
    if ((m = line.match(RE_HEADING))) {
      flush();
      var n = m[1].length;
      out.push("<h" + n + ">" + renderInline(m[2]) + "</h" + n + ">");
      i++;
      continue;
    }
    if (RE_HR.test(line)) {
      flush();
      out.push("<hr>");
      i++;
      continue;
    }
    if (RE_QUOTE.test(line)) {
      flush();
      var quoted = [];
      while (i < lines.length && (m = lines[i].match(RE_QUOTE))) {
        quoted.push(m[1]);
        i++;
      }
      out.push("<blockquote>" + renderBlocks(quoted, depth + 1) + "</blockquote>");
      continue;
    }
    if (RE_ITEM.test(line)) {
      flush();
      var base = indentOf(line);
      var block = [line];
      var inFence = null;
      var f0 = line.match(RE_ITEM)[3].match(RE_FENCE);
      if (f0) inFence = f0[2];
      i++;
      while (i < lines.length) {
        var cur = lines[i];
        if (inFence) {
          block.push(cur);
          if (isFenceClose(cur, inFence)) inFence = null;
          i++;
          continue;
        }
        if (!cur.trim()) {
          var j = i + 1;
          while (j < lines.length && !lines[j].trim()) j++;
          if (j < lines.length && indentOf(lines[j]) >= base && (RE_ITEM.test(lines[j]) || indentOf(lines[j]) > base)) {
            block = block.concat(lines.slice(i, j));
            i = j;
            continue;
          }
          break;
        }
        if ((RE_ITEM.test(cur) && indentOf(cur) >= base) || indentOf(cur) > base) {
          var fm = cur.match(RE_FENCE);
          if (fm) inFence = fm[2];
          block.push(cur);
          i++;
          continue;
        }
        // lazy continuation of the last item's text
        if (!startsBlock(cur) && lines[i - 1].trim()) {
          block.push(" ".repeat(base + 2) + cur.trim());
          i++;
          continue;
        }
        break;
      }
      out.push(renderList(block, depth));
      continue;
    }
    // table: header row, separator row, body rows
    var sep = i + 1 < lines.length ? lines[i + 1] : "";
    if (line.indexOf("|") >= 0 && sep.indexOf("|") >= 0 && RE_TABLE_SEP.test(sep)) {
      var header = splitRow(line);
      var aligns = splitRow(sep).map(function (c) {
        var left = c[0] === ":";
        var right = c[c.length - 1] === ":";
        return left && right ? "center" : right ? "right" : left ? "left" : "";
      });
      if (header.length === aligns.length) {
        flush();
        var rows = [];
        i += 2;
        while (i < lines.length && lines[i].trim() && lines[i].indexOf("|") >= 0) {
          rows.push(splitRow(lines[i]));
          i++;
        }
        out.push(renderTable(header, aligns, rows));
        continue;
      }
    }
    para.push(line);
    i++;
  }
  flush();
  return out.join("");
}

/** Markdown text -> safe HTML string. */
export function renderMarkdown(src) {
  var text = String(src == null ? "" : src)
    .split(HOLD)
    .join("")
    .replace(/\r\n?/g, "\n");
  return renderBlocks(text.split("\n"), 0);
}
