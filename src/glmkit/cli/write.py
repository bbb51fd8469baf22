"""``glmkit summarize`` and ``glmkit generate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from glmkit.cli.progress import bar
from glmkit.cli.runtime import add_model_args, settings_from
from glmkit.errors import GlmkitError, InvalidRequestError


def register(sub: Any) -> None:
    s = sub.add_parser(
        "summarize",
        help="summarize texts, files or folders (any format the knowledge base reads)",
        description="One input: the summary streams to stdout. With --out DIR: a batch, one "
        "<name>.summary.json per input, resumable, bad inputs reported in DIR/report.json.",
    )
    s.add_argument("paths", nargs="*", type=Path, help="files or folders; none: read the text from stdin")
    s.add_argument("--mode", choices=["news", "doc", "paper"], default="doc")
    s.add_argument("--max-chars", type=int, help="length of the summary in characters")
    s.add_argument("--sentences", type=int, help="length of the summary in sentences")
    s.add_argument("--language", help="write the summary in this language (e.g. English)")
    s.add_argument("--strategy", choices=["map_reduce", "refine"], default="map_reduce")
    s.add_argument("--extractive", action="store_true", help="TextRank sentences, no model")
    s.add_argument(
        "--parallel", type=int, default=8, help="sequences the engine decodes together (a local model)"
    )
    s.add_argument("--concurrency", type=int, help="model calls in flight (default: --parallel)")
    s.add_argument(
        "--prefilter",
        type=float,
        nargs="?",
        const=0.5,
        help="TextRank keeps this share of the sentences (default 0.5) before the model reads them",
    )
    s.add_argument(
        "--resume",
        action="store_true",
        help="one long document: reuse the finished calls of a run that was stopped (Ctrl-C or killed)",
    )
    s.add_argument("--out", type=Path, help="batch mode: write one result per input into this folder")
    s.add_argument("--no-resume", action="store_true", help="batch mode: redo inputs already summarized")
    add_model_args(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_summarize)

    g = sub.add_parser(
        "generate",
        help="generate a poem, story, article, ad or product copy with checked constraints",
        description="KIND is a template: poem, story, article, ad, product, or one of yours in "
        "$GLMKIT_HOME/templates/*.yaml (`glmkit generate templates` lists them). "
        "With --batch FILE (CSV or JSONL of requests): one JSON line per request in --out.",
    )
    g.add_argument("kind", nargs="?", help="template name, or 'templates' to list them")
    g.add_argument("topic", nargs="?")
    g.add_argument("--form", help="poems: 五言绝句 | 七言绝句 | 五言律诗 | 七言律诗")
    g.add_argument("--keywords", help="comma-separated words that must appear")
    g.add_argument("--style")
    g.add_argument("--audience")
    g.add_argument("--min-chars", type=int)
    g.add_argument("--max-chars", type=int)
    g.add_argument("--retries", type=int, default=3)
    g.add_argument("--seed", type=int)
    g.add_argument("--batch", type=Path, help="a CSV or JSONL of requests (kind, topic, form, keywords, …)")
    g.add_argument("--out", type=Path, help="with --batch: the JSONL to write (resumes if it exists)")
    g.add_argument("--no-resume", action="store_true")
    add_model_args(g)
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_generate)


def _emit(args: argparse.Namespace, obj: dict[str, Any], human: str, err: bool = False) -> None:
    if args.json:
        print(json.dumps(obj, ensure_ascii=False))
    else:
        print(human, file=sys.stderr if err else sys.stdout)


def cmd_summarize(args: argparse.Namespace) -> int:
    from glmkit.apps.batch import inputs, read_document, summarize_batch

    if args.out is None and len(args.paths) == 1 and args.paths[0].is_dir():
        args.out = args.paths[0].parent / f"{args.paths[0].name}.summaries"
        print(f"glmkit: a folder: writing one summary per file to {args.out}", file=sys.stderr)
    batch = args.out is not None
    if batch and not args.paths:
        raise InvalidRequestError("--out needs input files or folders")
    options = {
        "mode": args.mode,
        "max_chars": args.max_chars,
        "sentences": args.sentences,
        "language": args.language,
        "strategy": args.strategy,
        "extractive": args.extractive,
    }
    if args.extractive:
        from glmkit.apps.summarize import extractive

        def run_extractive(text: str) -> dict[str, Any]:
            return {"summary": extractive(text, args.sentences or 3), "method": "extractive"}

        if batch:
            report = summarize_batch(
                args.paths, args.out, run_extractive, options=options, resume=not args.no_resume, progress=bar
            )
            return _report(args, report.as_dict())
        return _each(args, run_extractive)

    from glmkit.apps.checkpoint import CallCache, checkpoint_path
    from glmkit.apps.summarize import Summarizer
    from glmkit.runtime.loaders import load_chat_model
    from glmkit.storage.home import home_key
    from glmkit.types import TextDelta

    settings = settings_from(args)
    if not 1 <= args.parallel <= 64:
        raise InvalidRequestError(f"--parallel must be within [1, 64], got {args.parallel}")
    settings = settings.model_copy(update={"n_seq_max": args.parallel})
    store_key = home_key(settings)  # checkpoints are sealed in an encrypted home; a key error comes first
    model = load_chat_model(settings=settings)
    try:
        summarizer = Summarizer(
            model, concurrency=args.concurrency or args.parallel, prefilter=args.prefilter
        )
        kw = {
            "mode": args.mode,
            "max_chars": args.max_chars,
            "sentences": args.sentences,
            "language": args.language,
            "strategy": args.strategy,
        }
        def checkpoint(text: str, resume: bool) -> CallCache:
            """The calls of this document's summary, kept until it completes (resumed when asked)."""
            path = checkpoint_path(settings.home, text, model=model.name, prefilter=args.prefilter, **kw)
            if not resume:
                path.unlink(missing_ok=True)
            return CallCache(path, store_key)

        if batch:

            def run_llm(text: str) -> dict[str, Any]:
                summarizer.cache = checkpoint(text, resume=not args.no_resume)
                s = summarizer.summarize(text, **kw)
                summarizer.cache.remove()
                return {"summary": s.text} | s.as_dict()

            report = summarize_batch(
                args.paths, args.out, run_llm, options=options, resume=not args.no_resume, progress=bar
            )
            return _report(args, report.as_dict())
        docs = [("<stdin>", None)] if not args.paths else [(str(p), p) for p, _ in inputs(args.paths)]
        failed = 0
        for name, path in docs:
            try:
                text = sys.stdin.read() if path is None else read_document(path)
                summarizer.cache = checkpoint(text, resume=args.resume)
                summary, deltas = summarizer.stream(text, progress=lambda d, t, stage: bar(d, t, stage), **kw)
                for d in deltas:
                    if not args.json and isinstance(d, TextDelta):
                        print(d.text, end="", flush=True)
                summarizer.cache.remove()
            except KeyboardInterrupt:
                kept = len(summarizer.cache) if summarizer.cache is not None else 0
                print(
                    f"\nglmkit: {name}: stopped; {kept} finished model calls are kept: run the same command "
                    "with --resume to go on from them",
                    file=sys.stderr,
                )
                return 130
            except GlmkitError as e:
                failed += 1
                _emit(args, {"source": name, "error": e.message}, f"glmkit: {name}: {e.message}", err=True)
                continue
            if args.json:
                print(
                    json.dumps(
                        {"source": name, "summary": summary.text} | summary.as_dict(), ensure_ascii=False
                    )
                )
            else:
                print()
        return 1 if failed == len(docs) else 0
    finally:
        model.close()


def _each(args: argparse.Namespace, run: Any) -> int:
    from glmkit.apps.batch import inputs, read_document

    docs = [("<stdin>", None)] if not args.paths else [(str(p), p) for p, _ in inputs(args.paths)]
    failed = 0
    for name, path in docs:
        try:
            text = sys.stdin.read() if path is None else read_document(path)
            result = run(text)
        except GlmkitError as e:
            failed += 1
            _emit(args, {"source": name, "error": e.message}, f"glmkit: {name}: {e.message}", err=True)
            continue
        _emit(args, {"source": name} | result, result["summary"])
    return 1 if failed == len(docs) else 0


def _report(args: argparse.Namespace, report: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(
            f"{report['done']} summarized, {report['skipped']} unchanged, {len(report['failed'])} failed → {report['out']}"
        )
        for f in report["failed"]:
            print(f"  failed: {f.get('source', f.get('line'))}: {f['error']}", file=sys.stderr)
    return 1 if report["failed"] and not report["done"] and not report["skipped"] else 0


def cmd_generate(args: argparse.Namespace) -> int:
    from glmkit.apps.generate import Generator, load_templates

    templates = load_templates(settings_from(args).home / "templates")
    if args.kind == "templates":
        if args.json:
            print(json.dumps([t.as_dict() | {"name": n} for n, t in templates.items()], ensure_ascii=False))
        else:
            for n, t in templates.items():
                print(f"{n:<12} {t.description}  ({t.source})")
        return 0
    if args.batch is None and (not args.kind or not args.topic):
        raise InvalidRequestError("give KIND and TOPIC, or --batch FILE --out OUT")
    if args.batch is not None and args.out is None:
        raise InvalidRequestError("--batch needs --out FILE.jsonl")
    from glmkit.apps.batch import generate_batch
    from glmkit.runtime.loaders import load_chat_model

    model = load_chat_model(settings=settings_from(args))
    try:
        gen = Generator(model, templates)
        if args.batch is not None:

            def one(req: dict[str, Any]) -> dict[str, Any]:
                req = dict(req)
                kind = req.pop("kind", args.kind or "article")
                topic = req.pop("topic", "")
                g = gen.generate(kind, topic, **req)
                return {"text": g.text, "ok": g.ok, "problems": g.problems, "attempts": g.attempts}

            report = generate_batch(args.batch, args.out, one, resume=not args.no_resume, progress=bar)
            return _report(args, report.as_dict())
        keywords = [k for k in (args.keywords or "").replace("，", ",").split(",") if k.strip()]
        g = gen.generate(
            args.kind,
            args.topic,
            form=args.form,
            keywords=keywords,
            style=args.style,
            audience=args.audience,
            min_chars=args.min_chars,
            max_chars=args.max_chars,
            retries=args.retries,
            seed=args.seed,
        )
    finally:
        model.close()
    if args.json:
        print(json.dumps(g.as_dict(), ensure_ascii=False))
    else:
        print(g.text)
        if not g.ok:
            print(
                f"glmkit: constraints not met after {g.attempts} attempts: {'; '.join(g.problems)}",
                file=sys.stderr,
            )
    return 0
