/* 知识库 tab: its state (shared by the list, upload and ask modules) and its paths under /v1/kb. */

export var KB_NAME_RE = /^[\p{L}\p{N}\p{M}_.\-]{1,64}$/u; // the server checks [\w.-]{1,64}, no leading "."
export var KB_STATUS = { added: "已添加", replaced: "已更新", unchanged: "未变化", failed: "失败" };
export var KB_STATUS_ICON = { added: "✓", replaced: "↻", unchanged: "=", failed: "✗" };
export var KB_KIND = { table: "表格", faq: "问答" };
export var KB_MODE = { hybrid: "混合", bm25: "关键词", vector: "向量" };

export var kb = {
  list: [],
  loaded: false,
  listError: "",
  current: null, // name of the selected knowledge base
  docs: [],
  docsError: "",
  docsLoading: false,
  listSeq: 0,
  docsSeq: 0,
  searchSeq: 0,
  uploading: false,
  ask: null, // {kb, question, text, sources, citations, found, done, error, stopped, pending, controller}
  flashTimer: null,
};

export function kbPath(name, rest) {
  return "/v1/kb/" + encodeURIComponent(name) + (rest || "");
}

export function currentKb() {
  for (var k = 0; k < kb.list.length; k++) if (kb.list[k].name === kb.current) return kb.list[k];
  return null;
}

export function kbCounts(r) {
  return (r.documents || 0) + " 个文档 · " + (r.chunks || 0) + " 个片段";
}
