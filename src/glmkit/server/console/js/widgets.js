/* Widgets more than one tab draws: table rows, citations ([n] markers and the cited passages) and the
 * inline SVG bar chart. Server strings go in through textContent; the chart is built with createElementNS. */
import { el, formatScore } from "./dom.js";

var CITE_RE = /\[(\d{1,2})\]/g; // the markers glmkit.apps.qa asks the model for
var SVG_NS = "http://www.w3.org/2000/svg"; // the SVG namespace name (not fetched)
var CHART_PALETTE = ["#2f6bff", "#22a06b", "#7c4dff", "#e8a317", "#d93026", "#0fa3b1", "#f07c2b", "#5b7083"];

/** Append one row of `cells` (th cells when `header`) to `table`. */
export function tableRow(table, cells, header, className) {
  var tr = el("tr", className ? { className: className } : null);
  cells.forEach(function (c) {
    tr.appendChild(el(header ? "th" : "td", null, c));
  });
  table.appendChild(tr);
  return tr;
}

export function sourceLine(x) {
  return (x.source || "?") + (x.location ? " · " + x.location : "");
}

/**
 * `[n]` markers -> superscript links, on HTML that renderMarkdown already made safe. Only text between
 * tags is touched (never an attribute), and never inside <code>, <pre> or an existing <a>.
 */
export function linkCitations(html) {
  var parts = html.split(/(<[^>]*>)/);
  var skip = 0;
  for (var k = 0; k < parts.length; k++) {
    if (k % 2 === 1) {
      var m = parts[k].match(/^<(\/?)(code|pre|a)\b/i);
      if (m) skip = Math.max(0, skip + (m[1] ? -1 : 1));
      continue;
    }
    if (skip || parts[k].indexOf("[") < 0) continue;
    parts[k] = parts[k].replace(CITE_RE, function (all, n) {
      n = String(parseInt(n, 10));
      return '<sup class="cite-ref"><a href="#kb-cite-' + n + '" data-cite="' + n + '" title="查看引用 ' + n + '">' + n + "</a></sup>";
    });
  }
  return parts.join("");
}

/** One cited (or retrieved) passage: [n], where it is from, its score and text; its id is `prefix` + n. */
export function citationItem(c, prefix) {
  var n = String(c.n);
  var li = el("li", { className: "kb-cite", id: prefix + n, value: n, "data-n": n, "data-source": c.source || "", tabindex: "-1" });
  var head = el("div", { className: "kb-cite-head" });
  head.appendChild(el("span", { className: "kb-cite-n" }, "[" + n + "]"));
  head.appendChild(el("span", { className: "kb-cite-source", title: sourceLine(c) }, sourceLine(c)));
  if (c.score != null) head.appendChild(el("span", { className: "kb-hit-score", title: "得分" }, formatScore(c.score)));
  li.appendChild(head);
  if (c.heading && (c.location || "").indexOf(c.heading) < 0) li.appendChild(el("div", { className: "kb-hit-heading" }, c.heading));
  li.appendChild(el("div", { className: "kb-hit-text" }, c.text || ""));
  return li;
}

function svgEl(tag, attrs, text) {
  var node = document.createElementNS(SVG_NS, tag);
  Object.keys(attrs || {}).forEach(function (k) {
    node.setAttribute(k, String(attrs[k]));
  });
  if (text != null) node.textContent = text;
  return node;
}

function clip(s, n) {
  s = String(s);
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

/**
 * Horizontal bars into `svg`, one block per group: {key, title, empty (shown when it has no items),
 * items: [{key, label, value, color?}]}. Every label is set with textContent.
 */
export function barChart(svg, groups) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  var W = 320;
  var LABEL_X = 88; // labels end here (right-aligned)
  var BAR_X = 94;
  var BAR_MAX = W - BAR_X - 34;
  var ROW = 22;
  var BAR_H = 14;
  var y = 0;
  groups.forEach(function (g) {
    y += 16;
    svg.appendChild(svgEl("text", { x: 0, y: y, class: "chart-title" }, g.title));
    y += 6;
    if (!g.items.length) {
      y += 16;
      svg.appendChild(svgEl("text", { x: 0, y: y, class: "chart-empty" }, g.empty));
      y += 10;
      return;
    }
    var max = 1;
    g.items.forEach(function (it) {
      max = Math.max(max, it.value);
    });
    g.items.forEach(function (it, i) {
      var top = y + 4;
      var w = it.value > 0 ? Math.max(3, Math.round((BAR_MAX * it.value) / max)) : 0;
      var row = svgEl("g", { class: "chart-row", "data-group": g.key, "data-key": it.key });
      row.appendChild(svgEl("title", null, it.label + (it.label !== it.key ? "（" + it.key + "）" : "") + "：" + it.value));
      row.appendChild(svgEl("text", { x: LABEL_X, y: top + BAR_H - 3, "text-anchor": "end", class: "chart-label" }, clip(it.label, 7)));
      row.appendChild(svgEl("rect", { x: BAR_X, y: top, width: W - BAR_X - 34, height: BAR_H, rx: 3, class: "bar-track" }));
      row.appendChild(
        svgEl("rect", {
          x: BAR_X,
          y: top,
          width: w,
          height: BAR_H,
          rx: 3,
          class: "bar bar-" + g.key,
          fill: it.color || CHART_PALETTE[i % CHART_PALETTE.length],
          "data-key": it.key,
          "data-value": it.value,
        })
      );
      row.appendChild(svgEl("text", { x: BAR_X + w + 4, y: top + BAR_H - 3, class: "chart-value" }, String(it.value)));
      svg.appendChild(row);
      y += ROW;
    });
    y += 8;
  });
  svg.setAttribute("viewBox", "0 0 " + W + " " + y);
}
