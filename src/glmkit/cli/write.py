"""``glmkit summarize`` and ``glmkit generate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from glmkit.cli.runtime import add_model_args, settings_from
from glmkit.errors import InvalidRequestError


def register(sub: Any) -> None:
    s = sub.add_parser("summarize", help="summarize texts or files (any format the knowledge base reads)")
    s.add_argument("paths", nargs="*", type=Path, help="files; none: read the text from stdin")
    s.add_argument("--mode", choices=["news", "doc", "paper"], default="doc")
    s.add_argument("--max-chars", type=int, help="length of the summary in characters")
    s.add_argument("--language", help="write the summary in this language (e.g. English)")
    s.add_argument("--extractive", action="store_true", help="TextRank sentences, no model")
    s.add_argument("--sentences", type=int, default=3, help="with --extractive: how many sentences")
    add_model_args(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_summarize)

    g = sub.add_parser("generate", help="generate a poem, story, article or ad copy with checked constraints")
    g.add_argument("kind", choices=["poem", "story", "article", "ad"])
    g.add_argument("topic")
    g.add_argument("--form", help="poems: 五言绝句 | 七言绝句 | 五言律诗 | 七言律诗")
    g.add_argument("--keywords", help="comma-separated words that must appear")
    g.add_argument("--style")
    g.add_argument("--audience")
    g.add_argument("--min-chars", type=int)
    g.add_argument("--max-chars", type=int)
    g.add_argument("--retries", type=int, default=3)
    g.add_argument("--seed", type=int)
    add_model_args(g)
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_generate)


def _read(paths: list[Path]) -> list[tuple[str, str]]:
    from glmkit.kb.loaders import load

    if not paths:
        return [("<stdin>", sys.stdin.read())]
    out = []
    for p in paths:
        sections = load(p)
        out.append((str(p), "\n".join(s.text if not s.answer else f"{s.text}\n{s.answer}" for s in sections)))
    return out


def cmd_summarize(args: argparse.Namespace) -> int:
    from glmkit.apps.summarize import Summarizer, extractive
    from glmkit.types import TextDelta

    docs = _read(args.paths)
    if args.extractive:
        for name, text in docs:
            picked = extractive(text, args.sentences)
            print(
                json.dumps({"source": name, "summary": picked, "method": "extractive"}, ensure_ascii=False)
                if args.json
                else picked
            )
        return 0
    from glmkit.runtime.models import load_chat_model

    settings = settings_from(args)
    model = load_chat_model(settings=settings)
    failed = 0
    try:
        for name, text in docs:
            try:
                summary, deltas = Summarizer(model).stream(
                    text, mode=args.mode, max_chars=args.max_chars, language=args.language
                )
            except InvalidRequestError as e:
                failed += 1
                print(
                    json.dumps({"source": name, "error": e.message}, ensure_ascii=False)
                    if args.json
                    else f"glmkit: {name}: {e.message}",
                    file=sys.stdout if args.json else sys.stderr,
                )
                continue
            for d in deltas:
                if not args.json and isinstance(d, TextDelta):
                    print(d.text, end="", flush=True)
            if args.json:
                print(
                    json.dumps(
                        {"source": name, "summary": summary.text} | summary.as_dict(), ensure_ascii=False
                    )
                )
            else:
                print()
    finally:
        model.close()
    return 1 if failed == len(docs) else 0


def cmd_generate(args: argparse.Namespace) -> int:
    from glmkit.apps.generate import Generator
    from glmkit.runtime.models import load_chat_model

    settings = settings_from(args)
    keywords = [k for k in (args.keywords or "").replace("，", ",").split(",") if k.strip()]
    model = load_chat_model(settings=settings)
    try:
        g = Generator(model).generate(
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
