/* 写作 tab: GET /v1/generate/templates fills the kinds; POST /v1/generate returns the text and its check
 * report (form, keywords, length), shown as a list of problems when a constraint was missed. */
import { apiJson, describeError } from "./api.js";
import { $, el, showError } from "./dom.js";

var gen = { templates: null };

function loadTemplates() {
  return apiJson("GET", "/v1/generate/templates")
    .then(function (body) {
      gen.templates = body.data;
      var sel = $("gen-kind");
      sel.innerHTML = "";
      var names = { poem: "诗词", story: "故事", article: "文章", ad: "广告文案", product: "商品描述" };
      body.data.forEach(function (t) {
        var o = el("option", { value: t.name, title: t.description || "" }, names[t.name] || t.description || t.name);
        sel.appendChild(o);
      });
      syncGenForm();
    })
    .catch(function (err) {
      showError("gen-error", describeError(err));
    });
}

function syncGenForm() {
  var kind = $("gen-kind").value;
  var t = (gen.templates || []).filter(function (x) {
    return x.name === kind;
  })[0];
  $("gen-form-label").hidden = !(t && t.takes_form);
}

function runGenerate() {
  showError("gen-error", "");
  var topic = $("gen-topic").value.trim();
  if (!topic) {
    showError("gen-error", "请填写主题或要求");
    return;
  }
  var body = { kind: $("gen-kind").value, topic: topic };
  if (!$("gen-form-label").hidden) body.form = $("gen-form-select").value;
  var kw = $("gen-keywords").value.split(/[,，、]/).map(function (x) {
    return x.trim();
  }).filter(Boolean);
  if (kw.length) body.keywords = kw;
  ["style", "audience"].forEach(function (k) {
    var v = $("gen-" + k).value.trim();
    if (v) body[k] = v;
  });
  var mn = parseInt($("gen-min").value, 10);
  var mx = parseInt($("gen-max").value, 10);
  if (mn) body.min_chars = mn;
  if (mx) body.max_chars = mx;
  $("gen-send").disabled = true;
  $("gen-output").textContent = "";
  $("gen-problems").innerHTML = "";
  $("gen-status").textContent = "生成中…（不满足约束时会自动重写）";
  apiJson("POST", "/v1/generate", body)
    .then(function (g) {
      $("gen-output").textContent = g.text;
      $("gen-status").textContent = (g.ok ? "✓ 满足全部约束" : "✗ 仍有约束未满足") + " · 第 " + g.attempts + " 稿";
      g.problems.forEach(function (p) {
        $("gen-problems").appendChild(el("li", null, p));
      });
    })
    .catch(function (err) {
      $("gen-status").textContent = "";
      showError("gen-error", describeError(err));
    })
    .then(function () {
      $("gen-send").disabled = false;
    });
}

export function initGenerate() {
  $("gen-kind").addEventListener("change", syncGenForm);
  $("gen-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    runGenerate();
  });
}

export function showGenerate() {
  if (!gen.templates) loadTemplates();
}
