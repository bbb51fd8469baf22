"""``glmkit data clean|segment|dedupe|mask|convert``: preprocessing that streams line by line.

Every command reads IN (``-``: stdin) one line at a time and writes OUT (``-``: stdout) through a temporary
file that replaces OUT only when the run completes, so a failed run leaves no half-written file. Lines are
plain text, or JSON objects whose ``--field`` string fields are processed while every other key is kept.
A summary goes to stderr (``--json``: a JSON object on stdout, or on stderr when OUT is stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any, TextIO

from glmkit.data.streams import (
    STDIO,
    Progress,
    Record,
    display_name,
    input_size,
    open_output,
    read_lines,
    read_records,
)
from glmkit.errors import InvalidRequestError

MAX_PRINTED_PROBLEMS = 20
MAX_SUMMARY_PROBLEMS = 100


def register(sub: Any) -> None:
    d = sub.add_parser("data", help="preprocess data: clean, segment, dedupe, mask PII, convert for ChatGLM3")
    ds = d.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    p = ds.add_parser("clean", help="strip HTML/boilerplate/control characters, normalise width and spaces")
    _io_args(p)
    p.add_argument("--t2s", action="store_true", help="traditional → simplified Chinese (needs OpenCC)")
    p.add_argument("--join-cjk", action="store_true", help="remove spaces between two Chinese characters")
    p.add_argument("--keep-html", action="store_true", help="do not strip HTML markup")
    p.add_argument("--keep-boilerplate", action="store_true", help="do not drop boilerplate lines")
    p.add_argument("--keep-width", action="store_true", help="do not convert full-width characters")
    p.set_defaults(func=cmd_clean)

    p = ds.add_parser("segment", help="jieba word segmentation with user dictionaries and stop words")
    _io_args(p)
    p.add_argument(
        "--userdict", action="append", default=[], metavar="FILE", help="jieba user dictionary (repeatable)"
    )
    p.add_argument(
        "--stopwords",
        action="append",
        default=[],
        metavar="LIST",
        help="zh, en or a file, one word a line (repeatable)",
    )
    p.add_argument(
        "--no-hmm", action="store_true", help="no HMM guessing of words missing from the dictionary"
    )
    p.set_defaults(func=cmd_segment)

    p = ds.add_parser("dedupe", help="drop exact and near duplicates (MinHash LSH), keeping the first")
    _io_args(p)
    p.add_argument(
        "--threshold", type=float, default=0.8, help="estimated Jaccard similarity that counts as a duplicate"
    )
    p.add_argument(
        "--shingle", choices=["char", "word"], default="char", help="character n-grams or jieba word n-grams"
    )
    p.add_argument("--ngram", type=int, help="shingle size (default: 5 characters or 2 words)")
    p.add_argument(
        "--num-perm", type=int, default=128, help="MinHash permutations (more: more precise, slower)"
    )
    p.add_argument(
        "--exact-only", action="store_true", help="only drop exact duplicates (after normalisation)"
    )
    p.add_argument("--report", metavar="FILE", help="write what was dropped as JSON lines")
    p.set_defaults(func=cmd_dedupe)

    p = ds.add_parser("mask", help="replace personal information with typed placeholders")
    _io_args(p)
    p.add_argument(
        "--types", help="comma-separated subset of: id_card,bank_card,email,mobile,landline,address"
    )
    p.add_argument(
        "--placeholder",
        action="append",
        default=[],
        metavar="TYPE=TEXT",
        help="placeholder for a type (repeatable)",
    )
    p.set_defaults(func=cmd_mask)

    p = ds.add_parser(
        "convert", help="Alpaca / ShareGPT / OpenAI messages (JSONL or CSV) → ChatGLM3 conversations"
    )
    p.add_argument("input", metavar="IN", help="JSONL or CSV file; - for stdin")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="JSONL output; - for stdout")
    p.add_argument(
        "--from", dest="source", choices=["auto", "alpaca", "sharegpt", "openai", "chatglm3"], default="auto"
    )
    p.add_argument("--csv", action="store_true", help="read IN as CSV (automatic for *.csv)")
    p.add_argument(
        "--errors", metavar="FILE", help="write every invalid record's line and reason as JSON lines"
    )
    p.add_argument("--json", action="store_true", help="print a summary object")
    p.set_defaults(func=cmd_convert)


def _io_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IN", help="input file, one record a line; - for stdin")
    p.add_argument("-o", "--output", metavar="OUT", default=STDIO, help="output file (default: - for stdout)")
    p.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="NAME",
        help="JSONL input: process this string field, keep the rest of the object (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print a summary object")


@contextlib.contextmanager
def _records(args: argparse.Namespace, label: str) -> Iterator[tuple[Iterator[Record], TextIO]]:
    """The input's records and the output stream, with a progress line while they run."""
    progress = Progress(f"glmkit data {label}", input_size(args.input))
    try:
        with open_output(args.output) as out:
            yield read_records(args.input, args.field, progress=progress), out
    finally:
        progress.close()


def _summary(args: argparse.Namespace, summary: dict[str, Any], human: str) -> int:
    if args.json:
        stream = sys.stderr if args.output == STDIO else sys.stdout
        print(json.dumps(summary, ensure_ascii=False), file=stream)
    else:
        print(f"glmkit data {args.data_command}: {human}", file=sys.stderr)
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from glmkit.data.clean import Cleaner, CleanOptions

    cleaner = Cleaner(
        CleanOptions(
            html=not args.keep_html,
            boilerplate=not args.keep_boilerplate,
            width=not args.keep_width,
            t2s=args.t2s,
            join_cjk=args.join_cjk,
            multiline=bool(args.field),  # a plain-text record must stay one line
        )
    )
    read = written = 0
    with _records(args, "clean") as (records, out):
        for rec in records:
            read += 1
            texts = [cleaner.clean(t) for t in rec.texts]
            if not any(texts):
                continue
            out.write(rec.render(texts) + "\n")
            written += 1
    summary = {"read": read, "written": written, "dropped_empty": read - written}
    return _summary(
        args,
        summary,
        f"{read:,} records read, {written:,} written, {read - written:,} empty after cleaning dropped",
    )


def cmd_segment(args: argparse.Namespace) -> int:
    from glmkit.data.segment import Segmenter, load_stopwords

    seg = Segmenter(args.userdict, load_stopwords(args.stopwords), hmm=not args.no_hmm)
    read = words = 0
    with _records(args, "segment") as (records, out):
        for rec in records:
            read += 1
            texts = [seg.segment(t) for t in rec.texts]
            words += sum(len(t.split()) for t in texts)
            out.write(rec.render(texts) + "\n")
    return _summary(
        args, {"read": read, "written": read, "words": words}, f"{read:,} records, {words:,} words kept"
    )


def cmd_dedupe(args: argparse.Namespace) -> int:
    from glmkit.data.dedupe import Deduper

    if args.report is not None and args.report == STDIO == args.output:
        raise InvalidRequestError(
            "--report - and output - would both go to stdout; give one a file", param="report"
        )
    deduper = Deduper(
        args.threshold,
        num_perm=args.num_perm,
        shingle=args.shingle,
        ngram=args.ngram,
        near=not args.exact_only,
    )
    counts: Counter[str] = Counter()
    read = 0
    report_cm = open_output(args.report) if args.report else contextlib.nullcontext(None)
    with _records(args, "dedupe") as (records, out), report_cm as report:
        for rec in records:
            read += 1
            text = "\n".join(rec.texts)
            drop = deduper.check(rec.number, text)
            if drop is None:
                out.write(rec.raw + "\n")
                continue
            counts[drop.kind] += 1
            if report is not None:
                report.write(json.dumps(drop.as_dict() | {"text": text[:100]}, ensure_ascii=False) + "\n")
    dropped = counts["exact"] + counts["near"]
    summary = {
        "read": read,
        "written": read - dropped,
        "exact": counts["exact"],
        "near": counts["near"],
        "threshold": args.threshold,
        "bands": deduper.bands,
        "rows": deduper.rows,
    }
    human = f"{read:,} records, {read - dropped:,} kept, {counts['exact']:,} exact and {counts['near']:,} near duplicates dropped"
    return _summary(args, summary, human)


def _placeholders(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        kind, sep, text = item.partition("=")
        if not sep or not kind.strip():
            raise InvalidRequestError(
                f"--placeholder {item!r}: expected TYPE=TEXT, e.g. mobile=[PHONE]", param="placeholder"
            )
        out[kind.strip()] = text
    return out


def cmd_mask(args: argparse.Namespace) -> int:
    from glmkit.data.mask import Masker

    types = [t.strip() for t in args.types.split(",") if t.strip()] if args.types else None
    masker = Masker(types, _placeholders(args.placeholder))
    totals: Counter[str] = Counter()
    read = changed = 0
    with _records(args, "mask") as (records, out):
        for rec in records:
            read += 1
            texts = []
            before = sum(totals.values())
            for t in rec.texts:
                masked, counts = masker.mask(t)
                texts.append(masked)
                totals.update(counts)
            changed += sum(totals.values()) > before
            out.write(rec.render(texts) + "\n")
    masked_counts = {t: totals[t] for t in masker.detectors if totals[t]}
    summary = {
        "read": read,
        "records_changed": changed,
        "masked": masked_counts,
        "total": sum(totals.values()),
    }
    per_type = ", ".join(f"{t} {n:,}" for t, n in masked_counts.items()) or "nothing found"
    return _summary(args, summary, f"{read:,} records, {changed:,} changed; masked: {per_type}")


def cmd_convert(args: argparse.Namespace) -> int:
    from glmkit.data.convert import Problem, convert_stream, csv_records, json_records

    name = display_name(args.input)
    is_csv = args.csv or args.input.lower().endswith(".csv")
    progress = Progress("glmkit data convert", input_size(args.input))
    lines = read_lines(args.input, progress=progress)
    rows = (
        csv_records((line.text + "\n" for line in lines), name)
        if is_csv
        else json_records(_jsonl_lines(lines, name))
    )
    problems: list[Problem] = []
    read = written = 0
    try:
        with open_output(args.output) as out:
            for n, result in convert_stream(rows, args.source):
                read += 1
                if isinstance(result, Problem):
                    problems.append(result)
                    if len(problems) <= MAX_PRINTED_PROBLEMS and not args.json:
                        print(f"glmkit: {name}:{n}: skipped: {result.reason}", file=sys.stderr)
                    continue
                out.write(json.dumps(result, ensure_ascii=False) + "\n")
                written += 1
            if written == 0:
                first = f"; line {problems[0].line}: {problems[0].reason}" if problems else ""
                raise InvalidRequestError(
                    f"{name}: no valid records ({len(problems)} invalid{first})", param="input"
                )
    finally:
        progress.close()
    if args.errors:
        with open_output(args.errors) as err:
            for p in problems:
                err.write(json.dumps(p.as_dict(), ensure_ascii=False) + "\n")
    if len(problems) > MAX_PRINTED_PROBLEMS and not args.json:
        more = len(problems) - MAX_PRINTED_PROBLEMS
        print(
            f"glmkit: … and {more:,} more invalid records"
            + ("" if args.errors else " (--errors FILE lists all)"),
            file=sys.stderr,
        )
    summary = {
        "input": name,
        "output": display_name(args.output),
        "format": args.source,
        "read": read,
        "written": written,
        "invalid": len(problems),
        "errors": [p.as_dict() for p in problems[:MAX_SUMMARY_PROBLEMS]],
    }
    return _summary(
        args, summary, f"{read:,} records read, {written:,} written, {len(problems):,} invalid skipped"
    )


def _jsonl_lines(lines: Iterator[Any], name: str) -> Iterator[tuple[int, str]]:
    """Line texts for ``json_records``, refusing a whole-file JSON array up front with the fix."""
    for line in lines:
        if line.number == 1 and line.text.lstrip().startswith("["):
            raise InvalidRequestError(
                f"{name} looks like one JSON array, not JSON Lines; convert it first, e.g. jq -c '.[]' IN > IN.jsonl",
                param="input",
            )
        yield line.number, line.text
