"""Score prediction files and write evaluation reports.

Input files hold one item per line (UTF-8, a BOM and CRLF line ends tolerated). A file whose name ends in
``.jsonl``/``.ndjson``, or any file read with an explicit field, is JSON Lines instead: one object per line
and the item in a field (default ``prediction`` for predictions, ``label`` for gold labels, ``reference``
for references). Predictions and golds pair up line by line; a missing or empty file, a bad line or a
mismatched count is an ``InvalidRequestError`` naming the file (and line).

Reports go to a folder: ``report.json`` for scripts, ``report.md`` with PNG charts beside it, and a
self-contained ``report.html`` (the same charts embedded as base64). matplotlib is imported only when a
report is written, and draws with its Agg canvas (no display, no global backend switch).

The scoring itself is in :mod:`glmkit.pipeline.metrics` and takes in-memory lists, so a runner that has a
model produce the predictions can call it directly.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmkit.errors import GlmkitError, InvalidRequestError
from glmkit.pipeline.metrics import (
    ClassificationReport,
    GenerationReport,
    Report,
    RetrievalQuery,
    RetrievalReport,
    classification_report,
    generation_report,
    retrieval_report,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

JSONL_SUFFIXES = (".jsonl", ".ndjson")
DEFAULT_FIELDS = {"pred": "prediction", "gold": "label", "ref": "reference"}
ROLE_NAMES = {"pred": "predictions", "gold": "gold labels", "ref": "references", "run": "retrieval run"}
EMPTY_LABEL = "(empty)"  # how an empty label is shown in tables and charts (JSON keeps "")


# ---- reading -----------------------------------------------------------------------------------------------


def _lines(path: Path, role: str) -> list[str]:
    what = ROLE_NAMES.get(role, role)
    if not path.exists():
        raise InvalidRequestError(f"{what} file not found: {path}", param=role)
    if not path.is_file():
        raise InvalidRequestError(f"{what} path is not a file: {path}", param=role)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InvalidRequestError(f"{path}:{line}: not UTF-8 text ({e.reason})", param=role) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise InvalidRequestError(f"{what} file {path} is empty: expected one item per line", param=role)
    return [line.removesuffix("\r") for line in lines]


def _json_object(path: Path, lineno: int, line: str, role: str) -> dict[str, Any]:
    if not line.strip():
        raise InvalidRequestError(f"{path}:{lineno}: blank line in a JSON Lines file", param=role)
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidRequestError(f"{path}:{lineno}: not valid JSON ({e.msg})", param=role) from None
    if not isinstance(obj, dict):
        raise InvalidRequestError(
            f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}", param=role
        )
    return obj


def is_jsonl(path: Path, field: str | None = None) -> bool:
    """Whether :func:`read_items` reads ``path`` as JSON Lines."""
    return field is not None or path.suffix.lower() in JSONL_SUFFIXES


def read_items(path: Path, *, field: str | None = None, role: str = "pred") -> list[str]:
    """The items of a file, one per line.

    Plain text: each line is an item, an empty line an empty item. JSON Lines (see :func:`is_jsonl`): each
    line an object, the item its ``field`` (default by ``role``: ``prediction``, ``label`` or
    ``reference``), a string or an integer (turned into its decimal string).
    """
    lines = _lines(path, role)
    if not is_jsonl(path, field):
        return lines
    key = field or DEFAULT_FIELDS.get(role, "text")
    out: list[str] = []
    for lineno, line in enumerate(lines, 1):
        obj = _json_object(path, lineno, line, role)
        if key not in obj:
            keys = ", ".join(sorted(obj)) or "none"
            raise InvalidRequestError(f"{path}:{lineno}: no {key!r} field (fields: {keys})", param=role)
        value = obj[key]
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            out.append(str(value))
        else:
            raise InvalidRequestError(
                f"{path}:{lineno}: field {key!r} must be a string, not "
                f"{json.dumps(value, ensure_ascii=False)}",
                param=role,
            )
    return out


def _ids(path: Path, lineno: int, obj: Mapping[str, Any], key: str) -> list[str]:
    if key not in obj:
        raise InvalidRequestError(f"{path}:{lineno}: no {key!r} field (a list of ids)", param="run")
    value = obj[key]
    if not isinstance(value, list) or not all(
        isinstance(x, str) or (isinstance(x, int) and not isinstance(x, bool)) for x in value
    ):
        raise InvalidRequestError(
            f"{path}:{lineno}: {key!r} must be a list of string or integer ids", param="run"
        )
    return [str(x) for x in value]


def read_run(path: Path) -> list[RetrievalQuery]:
    """A retrieval run: JSON Lines, one query per line, ``{"retrieved": [ids, best first], "relevant":
    [ids]}``. Ids are strings or integers (compared as their decimal strings)."""
    out = []
    for lineno, line in enumerate(_lines(path, "run"), 1):
        obj = _json_object(path, lineno, line, "run")
        out.append(RetrievalQuery(_ids(path, lineno, obj, "retrieved"), _ids(path, lineno, obj, "relevant")))
    return out


def _check_paired(a: Sequence[str], a_path: Path, b: Sequence[str], b_path: Path) -> None:
    if len(a) != len(b):
        raise InvalidRequestError(
            f"line counts differ: {a_path} has {len(a)} lines but {b_path} has {len(b)}; "
            "they must pair up line by line"
        )


# ---- scoring files -----------------------------------------------------------------------------------------


def evaluate_classification(
    pred_path: Path,
    gold_path: Path,
    *,
    pred_field: str | None = None,
    gold_field: str | None = None,
    labels: Sequence[str] | None = None,
) -> ClassificationReport:
    """Score a file of predicted labels against a file of gold labels. Labels are stripped of surrounding
    whitespace; an empty gold label is an error, an empty prediction a wrong answer."""
    pred = [x.strip() for x in read_items(pred_path, field=pred_field, role="pred")]
    gold = [x.strip() for x in read_items(gold_path, field=gold_field, role="gold")]
    _check_paired(pred, pred_path, gold, gold_path)
    for lineno, g in enumerate(gold, 1):
        if not g:
            raise InvalidRequestError(f"{gold_path}:{lineno}: empty gold label", param="gold")
    return classification_report(gold, pred, labels)


def evaluate_generation(
    pred_path: Path, ref_path: Path, *, pred_field: str | None = None, ref_field: str | None = None
) -> GenerationReport:
    """Score a file of generated texts against a file of references (ROUGE and both BLEU-4 conventions).
    Empty lines are scored, not skipped."""
    pred = read_items(pred_path, field=pred_field, role="pred")
    ref = read_items(ref_path, field=ref_field, role="ref")
    _check_paired(pred, pred_path, ref, ref_path)
    return generation_report(pred, ref)


def evaluate_retrieval(run_path: Path, ks: Sequence[int] = (1, 5, 10)) -> RetrievalReport:
    """Score a retrieval run (see :func:`read_run`): recall@k and hit@k for each k, and MRR."""
    return retrieval_report(read_run(run_path), ks)


def report_dict(
    report: Report, sources: Mapping[str, str] | None = None, *, samples: bool = False
) -> dict[str, Any]:
    """The JSON form of a report, with the files it was computed from (and, for generation with
    ``samples``, each sample's scores)."""
    d = report.as_dict(samples=True) if samples and isinstance(report, GenerationReport) else report.as_dict()
    if sources:
        d["sources"] = dict(sources)
    return d


# ---- charts ------------------------------------------------------------------------------------------------

_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "AR PL UMing CN",
)


def _font_families() -> list[str]:
    """DejaVu Sans first, then any installed CJK font, so Chinese labels render (matplotlib falls back
    glyph by glyph through the list)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(name for name in _CJK_FONTS if name in installed)]


@contextmanager
def _chart_style() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context({"font.family": _font_families(), "font.size": 9}), warnings.catch_warnings():
        # without a CJK font, Chinese glyphs draw as boxes: the chart is still worth having
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        yield


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _shown(label: str) -> str:
    return label if label else EMPTY_LABEL


MAX_CHART_LABELS = 60


def _f1_chart(r: ClassificationReport) -> bytes:
    labels = r.labels[:MAX_CHART_LABELS]
    values = [r.per_class[x].f1 for x in labels]
    fig = _figure(7.0, 1.4 + 0.28 * len(labels))
    ax = fig.add_subplot()
    y = list(range(len(labels)))
    ax.barh(y, values, color="#4c78a8")
    ax.set_yticks(y, [_shown(x) for x in labels])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    ax.axvline(r.macro.f1, color="#e45756", linestyle="--", linewidth=1, label=f"macro F1 {r.macro.f1:.3f}")
    for yi, v in zip(y, values, strict=True):
        ax.text(v + 0.01, yi, f"{v:.2f}", va="center", fontsize=8)
    more = f" (first {len(labels)} of {len(r.labels)})" if len(r.labels) > len(labels) else ""
    ax.set_title(f"F1 per class{more}")
    ax.set_xlabel("F1")
    ax.legend(loc="lower right")
    return _png(fig)


def _confusion_chart(r: ClassificationReport) -> bytes:
    n = len(r.labels)
    side = min(14.0, max(4.5, 1.8 + 0.45 * n))
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(r.confusion.matrix, cmap="Blues", aspect="equal")
    fig.colorbar(image, ax=ax, shrink=0.8)
    if n <= MAX_CHART_LABELS:
        names = [_shown(x) for x in r.labels]
        ax.set_xticks(range(n), names, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
        ax.set_yticks(range(n), names)
    if n <= 25:
        top = max((max(row) for row in r.confusion.matrix), default=0)
        for i, row in enumerate(r.confusion.matrix):
            for j, count in enumerate(row):
                color = "white" if top and count > top / 2 else "black"
                ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Confusion matrix")
    return _png(fig)


def _generation_chart(r: GenerationReport) -> bytes:
    names = ["ROUGE-1", "ROUGE-2", "ROUGE-L", "BLEU-4\n(jieba words)", "BLEU-4\n(chars, sacrebleu)"]
    values = [r.rouge1, r.rouge2, r.rouge_l, r.bleu4_jieba, r.bleu4_char_sacrebleu]
    fig = _figure(7.0, 4.0)
    ax = fig.add_subplot()
    x = list(range(len(names)))
    ax.bar(x, values, color=["#4c78a8"] * 3 + ["#f58518", "#54a24b"])
    ax.set_xticks(x, names)
    ax.set_ylim(0, max(100.0, max(values) * 1.1))
    for xi, v in zip(x, values, strict=True):
        ax.text(xi, v + 1, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_ylabel("score (0-100)")
    ax.set_title(f"Generation metrics over {r.n} samples")
    return _png(fig)


def _retrieval_chart(r: RetrievalReport) -> bytes:
    fig = _figure(6.5, 4.0)
    ax = fig.add_subplot()
    ax.plot(r.ks, [r.recall[k] for k in r.ks], marker="o", label="recall@k")
    ax.plot(r.ks, [r.hit[k] for k in r.ks], marker="s", linestyle="--", label="hit@k")
    ax.axhline(r.mrr, color="#e45756", linestyle="--", linewidth=1, label=f"MRR {r.mrr:.3f}")
    ax.set_xticks(r.ks)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("k")
    ax.set_title(f"Recall@k over {r.n} queries")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _png(fig)


@dataclass(frozen=True)
class Chart:
    filename: str
    title: str
    png: bytes


def render_charts(report: Report) -> list[Chart]:
    """The report's charts as PNGs: per-class F1 and the confusion matrix for classification, the scores for
    generation, recall@k for retrieval."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise GlmkitError("report charts need matplotlib: pip install 'matplotlib==3.11.2'") from None
    with _chart_style():
        if isinstance(report, ClassificationReport):
            return [
                Chart("f1_per_class.png", "F1 per class", _f1_chart(report)),
                Chart("confusion_matrix.png", "Confusion matrix", _confusion_chart(report)),
            ]
        if isinstance(report, GenerationReport):
            return [Chart("generation_scores.png", "Generation scores", _generation_chart(report))]
        return [Chart("recall_at_k.png", "Recall@k", _retrieval_chart(report))]


# ---- tables (shared by Markdown and HTML) ------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


def _f(x: float) -> str:
    return f"{x:.4f}"


def _s(x: float) -> str:
    return f"{x:.2f}"


def report_tables(report: Report) -> list[Table]:
    """The report as titled tables of display strings (fractions to 4 decimals, 0–100 scores to 2)."""
    if isinstance(report, ClassificationReport):
        rows = [
            [_shown(x), _f(s.precision), _f(s.recall), _f(s.f1), str(s.support)]
            for x, s in report.per_class.items()
        ]
        for name, avg in (
            ("macro avg", report.macro),
            ("micro avg", report.micro),
            ("weighted avg", report.weighted),
        ):
            rows.append([name, _f(avg.precision), _f(avg.recall), _f(avg.f1), str(avg.support)])
        cm = report.confusion
        return [
            Table(
                "Summary", ["metric", "value"], [["items", str(report.n)], ["accuracy", _f(report.accuracy)]]
            ),
            Table("Per class (zero_division=0)", ["label", "precision", "recall", "F1", "support"], rows),
            Table(
                "Confusion matrix (rows: gold, columns: predicted)",
                ["gold \\ predicted", *(_shown(x) for x in cm.labels)],
                [[_shown(x), *(str(c) for c in row)] for x, row in zip(cm.labels, cm.matrix, strict=True)],
            ),
        ]
    if isinstance(report, GenerationReport):
        b = report.sacrebleu
        return [
            Table(
                "Scores (0-100)",
                ["metric", "value", "convention"],
                [
                    ["ROUGE-1", _s(report.rouge1), "rouge-chinese F, jieba words, mean of samples"],
                    ["ROUGE-2", _s(report.rouge2), "rouge-chinese F, jieba words, mean of samples"],
                    ["ROUGE-L", _s(report.rouge_l), "rouge-chinese F, jieba words, mean of samples"],
                    [
                        "BLEU-4 (jieba words)",
                        _s(report.bleu4_jieba),
                        "nltk sentence_bleu, method3, mean of samples (ChatGLM3 demo)",
                    ],
                    [
                        "BLEU-4 (characters)",
                        _s(report.bleu4_char_sacrebleu),
                        "sacrebleu corpus_bleu, tokenize='zh'",
                    ],
                ],
            ),
            Table(
                "Data",
                ["what", "value"],
                [
                    ["samples", str(report.n)],
                    ["empty predictions", str(report.n_empty_pred)],
                    ["empty references", str(report.n_empty_ref)],
                    ["sacrebleu precisions 1-4", " / ".join(f"{p:.1f}" for p in b.precisions)],
                    ["sacrebleu brevity penalty", f"{b.bp:.4f} (hyp {b.sys_len}, ref {b.ref_len} tokens)"],
                ],
            ),
        ]
    return [
        Table(
            "Summary",
            ["metric", "value"],
            [
                ["queries scored", str(report.n)],
                ["queries without relevant ids (skipped)", str(report.n_skipped)],
                ["MRR", _f(report.mrr)],
            ],
        ),
        Table(
            "By k",
            ["k", "recall@k", "hit@k"],
            [[str(k), _f(report.recall[k]), _f(report.hit[k])] for k in report.ks],
        ),
    ]


# ---- Markdown and HTML -------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|!])")


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _title(report: Report) -> str:
    return f"Evaluation report: {report.kind}"


def render_markdown(report: Report, charts: Sequence[Chart], sources: Mapping[str, str] | None = None) -> str:
    """Markdown tables, with the charts linked as PNG files in the same folder."""
    out = [f"# {_title(report)}", ""]
    for role, path in (sources or {}).items():
        out.append(f"- {_md(role)}: `{path.replace('`', chr(39))}`")
    if sources:
        out.append("")
    for table in report_tables(report):
        out += [f"## {_md(table.title)}", ""]
        out.append("| " + " | ".join(_md(h) for h in table.header) + " |")
        out.append("|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(table.header))) + "|")
        out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in table.rows]
        out.append("")
    for chart in charts:
        out += [f"![{_md(chart.title)}]({chart.filename})", ""]
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; }
td { text-align: right; font-variant-numeric: tabular-nums; }
td:first-child, th:first-child { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; display: block; margin: 1rem 0; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""


def render_html(report: Report, charts: Sequence[Chart], sources: Mapping[str, str] | None = None) -> str:
    """One self-contained HTML page: the tables and the charts embedded as base64 PNGs."""
    e = html.escape
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(_title(report))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(_title(report))}</h1>",
    ]
    if sources:
        out.append("<ul>")
        out += [f"<li>{e(role)}: <code>{e(path)}</code></li>" for role, path in sources.items()]
        out.append("</ul>")
    for table in report_tables(report):
        out.append(f"<h2>{e(table.title)}</h2><table><thead><tr>")
        out += [f"<th>{e(h)}</th>" for h in table.header]
        out.append("</tr></thead><tbody>")
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table.rows]
        out.append("</tbody></table>")
    for chart in charts:
        data = base64.b64encode(chart.png).decode("ascii")
        out.append(
            f'<h2>{e(chart.title)}</h2><img alt="{e(chart.title)}" src="data:image/png;base64,{data}">'
        )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ---- writing -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFiles:
    json: Path
    markdown: Path
    html: Path
    charts: list[Path]

    def as_dict(self) -> dict[str, Any]:
        return {
            "json": str(self.json),
            "markdown": str(self.markdown),
            "html": str(self.html),
            "charts": [str(p) for p in self.charts],
        }


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: Report, out_dir: Path, *, sources: Mapping[str, str] | None = None) -> ReportFiles:
    """Write ``report.json``, ``report.md`` (+ its PNG charts) and ``report.html`` into ``out_dir``.

    Everything is rendered in memory first and each file replaced atomically, so a failure leaves no
    half-written file behind.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidRequestError(f"report folder {out_dir} exists and is not a folder", param="report")
    charts = render_charts(report)
    as_json = report_dict(report, sources, samples=True)
    files: dict[Path, bytes] = {
        out_dir / "report.json": (json.dumps(as_json, ensure_ascii=False, indent=2) + "\n").encode(),
        out_dir / "report.md": render_markdown(report, charts, sources).encode(),
        out_dir / "report.html": render_html(report, charts, sources).encode(),
    }
    files.update({out_dir / c.filename: c.png for c in charts})
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for path, data in files.items():
            _write_atomic(path, data)
    except OSError as e:
        raise InvalidRequestError(
            f"cannot write the report to {out_dir}: {e.strerror or e}", param="report"
        ) from e
    return ReportFiles(
        out_dir / "report.json",
        out_dir / "report.md",
        out_dir / "report.html",
        [out_dir / c.filename for c in charts],
    )
