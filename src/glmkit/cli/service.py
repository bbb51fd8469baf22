"""``glmkit service …``: the customer-service bot's intent classifier (train, classify)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from glmkit.cli.runtime import settings_from
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
    svc.set_defaults(func=cmd_service)


def cmd_service(args: argparse.Namespace) -> int:
    from glmkit.apps.intent import IntentClassifier, read_examples
    from glmkit.kb.embed import load_embedder

    settings = settings_from(args)
    embedder = load_embedder(settings.embedding_model)
    if args.service_command == "train":
        texts, labels = read_examples(args.data, args.text_column, args.label_column)
        clf = IntentClassifier.train(embedder, texts, labels)
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
