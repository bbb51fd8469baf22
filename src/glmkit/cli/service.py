"""``glmkit service …``: the customer-service bot's intent classifier (train, classify)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from glmkit.cli.runtime import add_model_args, settings_from
from glmkit.errors import InvalidRequestError


def register(sub: Any) -> None:
    svc = sub.add_parser("service", help="the customer-service bot: intents")
    ss = svc.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    tr = ss.add_parser("train", help="train an intent classifier from a CSV/JSONL of text,label examples")
    tr.add_argument("data", type=Path)
    tr.add_argument("--out", type=Path, required=True, help="folder for the model")
    tr.add_argument("--text-column")
    tr.add_argument("--label-column")
    tr.add_argument("--json", action="store_true")
    cl = ss.add_parser("classify", help="classify texts (arguments, or one per line on stdin)")
    cl.add_argument("model_dir", type=Path, metavar="MODEL", help="folder made by glmkit service train")
    cl.add_argument("texts", nargs="*")
    cl.add_argument("--top", type=int, default=3)
    cl.add_argument("--json", action="store_true")
    run = ss.add_parser("run", help="chat with a bot in the terminal (its sessions persist in GLMKIT_HOME)")
    run.add_argument("config", type=Path)
    run.add_argument("--session", help="continue this session id")
    run.add_argument("-q", "--query", action="append", help="send this message and exit (repeatable)")
    run.add_argument("--trace", action="store_true", help="print each answer's trace")
    add_model_args(run)
    run.add_argument("--json", action="store_true")
    ex = ss.add_parser("export", help="export well-rated answers as fine-tuning (sft) or FAQ (faq) data")
    ex.add_argument("config", type=Path)
    ex.add_argument("--format", choices=["sft", "faq"], default="sft", dest="fmt")
    ex.add_argument("--min-rating", type=int, default=1)
    ex.add_argument("-o", "--out", type=Path, help="file to write (default: stdout)")
    svc.set_defaults(func=cmd_service)


def cmd_service(args: argparse.Namespace) -> int:
    from glmkit.apps.intent import IntentClassifier, read_examples
    from glmkit.cli.progress import bar
    from glmkit.kb.embed import load_embedder

    settings = settings_from(args)
    if args.service_command == "run":
        return cmd_run(args, settings)
    if args.service_command == "export":
        return cmd_export(args, settings)
    embedder = load_embedder(settings.embedding_model)
    if args.service_command == "train":
        texts, labels = read_examples(args.data, args.text_column, args.label_column)
        clf = IntentClassifier.train(embedder, texts, labels, progress=bar)
        clf.save(args.out)
        out = {"model": str(args.out), "examples": len(texts), "labels": len(clf.labels)}
        print(
            json.dumps(out)
            if args.json
            else f"trained on {len(texts)} examples, {len(clf.labels)} intents → {args.out}"
        )
        return 0
    clf = IntentClassifier.load(args.model_dir, embedder)
    texts = list(args.texts) or [line.strip() for line in sys.stdin if line.strip()]
    if not texts:
        raise InvalidRequestError("give texts to classify as arguments or one per line on stdin")
    preds = clf.classify(texts, top=args.top)
    for t, p in zip(texts, preds, strict=True):
        if args.json:
            print(json.dumps({"text": t} | p.as_dict(), ensure_ascii=False))
        else:
            print(f"{p.label}\t{p.confidence:.3f}\t{t}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Any) -> int:
    from glmkit.apps.bot_config import BotConfig
    from glmkit.apps.service import Bot
    from glmkit.apps.sessions import SessionStore
    from glmkit.kb import open_knowledge_bases
    from glmkit.kb.embed import load_embedder
    from glmkit.runtime.loaders import load_chat_model
    from glmkit.storage.home import home_key

    cfg = BotConfig.load(args.config)
    if settings.code_interpreter:
        from glmkit.tools.registry import enable_code_interpreter

        enable_code_interpreter()
    kbs = open_knowledge_bases(settings) if cfg.knowledge_bases else None
    if kbs is not None:
        kbs.visible(cfg.knowledge_bases, None)  # a missing knowledge base fails before the model loads
    store = SessionStore(
        settings.home / "service" / "sessions.sqlite3", home_key(settings)
    )  # a key error before the model loads
    embedder = load_embedder(settings.embedding_model)
    model = load_chat_model(settings=settings)
    try:
        bot = Bot(cfg, model, embedder, store, kbs)
        sid = args.session or bot.start("terminal")
        if args.session:
            bot.store.get(cfg.name, sid)
        if not args.json and not args.query:
            print(f"{cfg.name} (session {sid}); empty line or Ctrl-D to quit", file=sys.stderr)
        lines = args.query or _stdin_lines()
        for text in lines:
            if not text.strip():
                break
            try:
                reply = bot.turn(sid, text)
            except InvalidRequestError as e:
                print(f"glmkit: {e.message}", file=sys.stderr)
                continue
            if args.json:
                print(json.dumps(reply.as_dict(), ensure_ascii=False))
                continue
            print(reply.text if reply.text is not None else "（人工客服处理中）")
            if args.trace:
                print("  trace: " + json.dumps(reply.trace, ensure_ascii=False)[:400], file=sys.stderr)
    finally:
        model.close()
    return 0


def _stdin_lines() -> Any:
    while True:
        try:
            if sys.stdin.isatty():
                yield input("> ")
            else:
                line = sys.stdin.readline()
                if not line:
                    return
                yield line.rstrip("\n")
        except EOFError:
            return


def cmd_export(args: argparse.Namespace, settings: Any) -> int:
    from glmkit.apps.bot_config import BotConfig
    from glmkit.apps.sessions import SessionStore, export_feedback
    from glmkit.storage.home import home_key

    cfg = BotConfig.load(args.config)
    store = SessionStore(settings.home / "service" / "sessions.sqlite3", home_key(settings))

    text = export_feedback(store, cfg, args.fmt, args.min_rating)
    if args.out:
        args.out.write_text(text, "utf-8")
        print(
            f"wrote {max(0, text.count(chr(10)) - (1 if args.fmt == 'faq' else 0))} rows to {args.out}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0
