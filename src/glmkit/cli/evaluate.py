"""``glmkit eval classify|generation|retrieval``: score prediction files, print a table or JSON, and
optionally write a report folder (JSON, Markdown, self-contained HTML with charts)."""

from __future__ import annotations

import argparse
import json
import unicodedata
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError

MAX_PRINTED_CONFUSION = 20  # labels; a bigger confusion matrix is left to --json and --report


def register(sub: Any) -> None:
    e = sub.add_parser("eval", help="score predictions: classification, generation (ROUGE/BLEU), retrieval")
    es = e.add_subparsers(dest="eval_command", required=True, metavar="KIND")

    p = es.add_parser(
        "classify",
        help="accuracy, precision/recall/F1 (macro, micro, weighted, per class), confusion matrix",
        description="Files hold one label per line; .jsonl files (or --*-field) one JSON object per line.",
    )
    p.add_argument("--pred", type=Path, required=True, help="predicted labels, one per line")
    p.add_argument("--gold", type=Path, required=True, help="gold labels, one per line")
    p.add_argument("--pred-field", help="JSON Lines field of the prediction (default: prediction)")
    p.add_argument("--gold-field", help="JSON Lines field of the gold label (default: label)")
    _common(p)
    p.set_defaults(func=cmd_classify)

    p = es.add_parser(
        "generation",
        help="ROUGE-1/2/L on jieba words, BLEU-4 on jieba words (ChatGLM3 demo) and on characters (sacrebleu zh)",
        description="Files hold one text per line; .jsonl files (or --*-field) one JSON object per line.",
    )
    p.add_argument("--pred", type=Path, required=True, help="generated texts, one per line")
    p.add_argument("--ref", type=Path, required=True, help="reference texts, one per line")
    p.add_argument("--pred-field", help="JSON Lines field of the prediction (default: prediction)")
    p.add_argument("--ref-field", help="JSON Lines field of the reference (default: reference)")
    p.add_argument("--samples", action="store_true", help="with --json: include per-sample scores")
    _common(p)
    p.set_defaults(func=cmd_generation)

    p = es.add_parser(
        "retrieval",
        help="recall@k, hit@k and MRR of a run",
        description='RUN is JSON Lines: {"retrieved": [ids, best first], "relevant": [ids]} per query.',
    )
    p.add_argument("--run", type=Path, required=True, help="the run, one JSON object per query")
    p.add_argument("--k", default="1,5,10", help="comma-separated cut-offs (default: 1,5,10)")
    _common(p)
    p.set_defaults(func=cmd_retrieval)

    _predict_parser(es)


def _predict_parser(es: Any) -> None:
    from glmkit.cli.runtime import add_model_args

    p = es.add_parser(
        "predict",
        help="run a model over a ChatGLM3-format test set, then score it (classify or generation)",
        description="DATA is JSONL in ChatGLM3's conversation format (glmkit data convert writes it): the "
        "last assistant turn of each conversation is the reference, the turns before it the prompt. "
        "Answers are greedy. --out gets {line, prediction, reference} per line.",
    )
    p.add_argument("data", type=Path)
    p.add_argument("--out", type=Path, required=True, help="predictions JSONL to write")
    p.add_argument("--task", choices=["classify", "generation"], required=True, help="how to score")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--concurrency", type=int, default=4)
    add_model_args(p)
    _common(p)
    p.set_defaults(func=cmd_predict)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--report", type=Path, metavar="DIR", help="also write report.json/.md/.html and charts here"
    )
    p.add_argument("--json", action="store_true")


def parse_ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        ks = []
    if not ks or any(k < 1 for k in ks):
        raise InvalidRequestError(f"--k must be comma-separated positive integers, got {text!r}", param="k")
    return sorted(set(ks))


# ---- output ------------------------------------------------------------------------------------------------


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to display width (CJK characters count double); numeric columns right-aligned, the
    rest left-aligned."""
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = [i > 0 and all(_is_number(r[i]) for r in rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = []
        for cell, w, right in zip(cells, widths, numeric, strict=True):
            pad = " " * (w - _width(cell))
            out.append(pad + cell if right else cell + pad)
        return "  ".join(out).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _emit(args: argparse.Namespace, report: Any, sources: dict[str, str], *, samples: bool = False) -> int:
    from glmkit.pipeline.evaluate import report_dict, report_tables, write_report

    files = write_report(report, args.report, sources=sources) if args.report else None
    if args.json:
        d = report_dict(report, sources, samples=samples)
        if files:
            d["report_files"] = files.as_dict()
        print(json.dumps(d, ensure_ascii=False))
        return 0
    for table in report_tables(report):
        if table.title.startswith("Confusion") and len(table.header) - 1 > MAX_PRINTED_CONFUSION:
            print(f"({table.title}: {len(table.header) - 1} labels, see --json or --report)\n")
            continue
        print(f"{table.title}\n{format_table(table.header, table.rows)}\n")
    if files:
        print(f"report: {files.html}")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from glmkit.pipeline.evaluate import evaluate_classification

    report = evaluate_classification(
        args.pred, args.gold, pred_field=args.pred_field, gold_field=args.gold_field
    )
    return _emit(args, report, {"pred": str(args.pred), "gold": str(args.gold)})


def cmd_generation(args: argparse.Namespace) -> int:
    from glmkit.pipeline.evaluate import evaluate_generation

    report = evaluate_generation(args.pred, args.ref, pred_field=args.pred_field, ref_field=args.ref_field)
    return _emit(args, report, {"pred": str(args.pred), "ref": str(args.ref)}, samples=args.samples)


def cmd_retrieval(args: argparse.Namespace) -> int:
    from glmkit.pipeline.evaluate import evaluate_retrieval

    report = evaluate_retrieval(args.run, parse_ks(args.k))
    return _emit(args, report, {"run": str(args.run)})


def cmd_predict(args: argparse.Namespace) -> int:
    from glmkit.cli.progress import bar
    from glmkit.cli.runtime import settings_from
    from glmkit.pipeline.evaluate import evaluate_classification, evaluate_generation
    from glmkit.pipeline.predict import predict, read_test_set, write_predictions
    from glmkit.runtime.loaders import load_chat_model

    items = read_test_set(args.data)  # bad data fails before the model loads
    settings = settings_from(args)  # one decode slot per concurrent answer, so they batch
    settings = settings.model_copy(update={"n_seq_max": max(1, args.concurrency)})
    model = load_chat_model(settings=settings)
    try:
        preds = predict(model, items, max_tokens=args.max_tokens, concurrency=args.concurrency, progress=bar)
    finally:
        model.close()
    write_predictions(args.out, items, preds)
    sources = {"data": str(args.data), "predictions": str(args.out), "model": settings.model}
    if args.task == "classify":
        report: Any = evaluate_classification(
            args.out, args.out, pred_field="prediction", gold_field="reference"
        )
    else:
        report = evaluate_generation(args.out, args.out, pred_field="prediction", ref_field="reference")
    return _emit(args, report, sources)
