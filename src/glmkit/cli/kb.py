"""``glmkit kb …`` (knowledge bases) and ``glmkit ask`` (answers with citations)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from glmkit.cli.progress import bar
from glmkit.cli.runtime import add_model_args, settings_from


def register(sub: Any) -> None:
    kb = sub.add_parser("kb", help="knowledge bases: create, add documents, search")
    ks = kb.add_subparsers(dest="kb_command", required=True, metavar="ACTION")

    p = ks.add_parser("create", help="create a knowledge base")
    p.add_argument("name")
    p.add_argument("--description", default="")
    p.add_argument("--json", action="store_true")

    p = ks.add_parser("add", help="add files or folders (unchanged files are skipped, changed ones replaced)")
    p.add_argument("name")
    p.add_argument("paths", nargs="+")
    p.add_argument("--tag", action="append", default=[], dest="tags", help="tag the documents (repeatable)")
    p.add_argument("--json", action="store_true")

    p = ks.add_parser("list", help="list knowledge bases")
    p.add_argument("--json", action="store_true")

    p = ks.add_parser("describe", help="one knowledge base: counts and settings")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")

    p = ks.add_parser("docs", help="list a knowledge base's documents")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")

    p = ks.add_parser("remove", help="remove a document (by source path or id)")
    p.add_argument("name")
    p.add_argument("doc")
    p.add_argument("--json", action="store_true")

    p = ks.add_parser("delete", help="delete a knowledge base and everything in it")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")

    p = ks.add_parser("search", help="retrieve chunks (JSON: a list, best first)")
    p.add_argument("name", help="knowledge base (comma-separated for several)")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--mode", choices=["hybrid", "bm25", "vector"], default="hybrid")
    p.add_argument("--no-rerank", action="store_true")
    p.add_argument("--source", action="append", default=[], help="only these sources (glob; repeatable)")
    p.add_argument("--tag", action="append", default=[], dest="tags", help="only documents with this tag")
    p.add_argument("--json", action="store_true")
    p = ks.add_parser("faq", help="build the knowledge base with the model: FAQ candidates, review, publish")
    fs = p.add_subparsers(dest="faq_command", required=True, metavar="STEP")
    g = fs.add_parser(
        "generate", help="generate FAQ candidates and summaries from documents not yet processed"
    )
    g.add_argument("name")
    g.add_argument("--per-doc", type=int, default=3)
    g.add_argument("--no-summaries", action="store_true")
    g.add_argument("--redo", action="store_true", help="process every document again")
    add_model_args(g)
    g.add_argument("--json", action="store_true")
    ls = fs.add_parser("list", help="list candidates")
    ls.add_argument("name")
    ls.add_argument("--status", choices=["pending", "published", "rejected"])
    ls.add_argument("--kind", choices=["faq", "summary"])
    ls.add_argument("--json", action="store_true")
    ed = fs.add_parser("edit", help="edit a candidate's question or answer")
    ed.add_argument("name")
    ed.add_argument("id")
    ed.add_argument("--question")
    ed.add_argument("--answer")
    ed.add_argument("--json", action="store_true")
    pb = fs.add_parser("publish", help="publish candidates (by id, or --all pending FAQ entries)")
    pb.add_argument("name")
    pb.add_argument("ids", nargs="*")
    pb.add_argument("--all", action="store_true")
    pb.add_argument("--json", action="store_true")
    rj = fs.add_parser("reject", help="reject a candidate (unpublishes it if it was live)")
    rj.add_argument("name")
    rj.add_argument("id")
    rj.add_argument("--json", action="store_true")
    kb.set_defaults(func=cmd_kb)

    ask = sub.add_parser("ask", help="answer a question from knowledge bases, with citations")
    ask.add_argument("name", help="knowledge base (comma-separated for several)")
    ask.add_argument("question")
    ask.add_argument("-k", type=int, default=4, help="chunks shown to the model")
    ask.add_argument("--no-rerank", action="store_true")
    add_model_args(ask)
    ask.add_argument("--json", action="store_true")
    ask.set_defaults(func=cmd_ask)


def cmd_kb(args: argparse.Namespace) -> int:
    from glmkit.kb import open_knowledge_bases
    from glmkit.kb.store import Filters, size_stats

    settings = settings_from(args)
    kbs = open_knowledge_bases(settings)
    c = args.kb_command
    out: Any
    if c == "faq":
        return cmd_faq(args, kbs, settings)
    if c == "create":
        rec = kbs.create(args.name, args.description)
        out = _kb_json(rec)
        text = f"created knowledge base {rec.name}"
    elif c == "add":
        report = kbs.add(args.name, args.paths, tags=args.tags, progress=bar)
        out = {
            "kb": report.kb,
            "files": [f.__dict__ for f in report.files],
            "chunks": report.chunks,
            "seconds": round(report.seconds, 2),
        }
        lines = [
            f"{f.status:<9} {f.source}"
            + (f"  ({f.chunks} chunks)" if f.chunks else "")
            + (f": {f.error}" if f.error else "")
            for f in report.files
        ]
        lines.append(
            f"{report.count('added')} added, {report.count('replaced')} replaced, {report.count('unchanged')} unchanged, "
            f"{report.count('failed')} failed; {report.chunks} chunks in {report.seconds:.1f} s"
        )
        text = "\n".join(lines)
        if args.json:
            print(json.dumps(out, ensure_ascii=False))
        else:
            print(text)
        return (
            1
            if report.count("failed")
            and not (report.count("added") + report.count("replaced") + report.count("unchanged"))
            else 0
        )
    elif c == "list":
        recs = kbs.list_kbs()
        out = [_kb_json(r) for r in recs]
        text = (
            "\n".join(
                f"{r.name:<20} {r.n_documents:>5} docs {r.n_chunks:>7} chunks  {r.description}" for r in recs
            )
            or "no knowledge bases yet: glmkit kb create NAME"
        )
    elif c == "describe":
        rec = kbs.store.get_kb(args.name)
        out = _kb_json(rec) | {
            "store": kbs.store.name,
            "chunk_size": kbs.chunk_size,
            "chunk_overlap": kbs.chunk_overlap,
        }
        text = "\n".join(f"{k}: {v}" for k, v in out.items())
    elif c == "docs":
        docs = kbs.store.list_documents(args.name)
        lengths = kbs.store.chunk_lengths(args.name)
        sizes = {d.id: size_stats(lengths.get(d.id, [])) for d in docs}
        out = [d.__dict__ | {"tags": list(d.tags), "chunk_chars": sizes[d.id]} for d in docs]
        text = (
            "\n".join(
                f"{d.id}  {d.n_chunks:>5} chunks  {sizes[d.id]['min']:g}/{sizes[d.id]['median']:g}/{sizes[d.id]['max']:g} chars"
                f"  {time.strftime('%Y-%m-%d %H:%M', time.localtime(d.added))}  {d.source}"
                for d in docs
            )
            or "no documents"
        )
    elif c == "remove":
        d = kbs.store.remove_document(args.name, args.doc)
        out = {"removed": d.id, "source": d.source}
        text = f"removed {d.source} ({d.n_chunks} chunks)"
    elif c == "delete":
        kbs.store.delete_kb(args.name)
        out = {"deleted": args.name}
        text = f"deleted knowledge base {args.name}"
    else:  # search
        hits = kbs.search(
            args.name.split(","),
            args.query,
            k=args.k,
            mode=args.mode,
            rerank=not args.no_rerank,
            filters=Filters(tuple(args.source), tuple(args.tags)),
        )
        out = [h.as_dict() for h in hits]
        text = (
            "\n\n".join(
                f"{i}. [{h.score:.4f}] {h.chunk.source} · {h.chunk.location}\n   {(h.chunk.text + (' → ' + h.chunk.answer if h.chunk.answer else ''))[:300]}"
                for i, h in enumerate(hits, 1)
            )
            or "no results"
        )
    print(json.dumps(out, ensure_ascii=False) if args.json else text)
    return 0


def _kb_json(r: Any) -> dict[str, Any]:
    return {
        "name": r.name,
        "description": r.description,
        "created": r.created,
        "embedder": r.embedder,
        "dim": r.dim,
        "documents": r.n_documents,
        "chunks": r.n_chunks,
    }


def cmd_ask(args: argparse.Namespace) -> int:
    from glmkit.apps.qa import QA
    from glmkit.kb import open_knowledge_bases
    from glmkit.runtime.loaders import load_chat_model
    from glmkit.types import TextDelta

    settings = settings_from(args)
    kbs = open_knowledge_bases(settings)
    kbs.visible(args.name.split(","), None)  # a missing knowledge base fails before the model loads
    model = load_chat_model(settings=settings)
    try:
        answer, deltas = QA(kbs, model, min_similarity=settings.qa_min_similarity).stream(
            args.name.split(","), args.question, k=args.k, rerank=not args.no_rerank
        )
        for d in deltas:
            if not args.json and isinstance(d, TextDelta):
                print(d.text, end="", flush=True)
        if args.json:
            print(json.dumps(answer.as_dict(), ensure_ascii=False))
        else:
            print()
            for c in answer.citations:
                print(f"[{c.n}] {c.source} · {c.location}")
    finally:
        model.close()
    return 0


def cmd_faq(args: argparse.Namespace, kbs: Any, settings: Any) -> int:
    from glmkit.errors import InvalidRequestError
    from glmkit.kb.faq import FAQBuilder, ReviewQueue
    from glmkit.storage.home import home_key

    kbs.store.get_kb(args.name)
    queue = ReviewQueue(settings.home / "kb" / "review.sqlite3", home_key(settings))
    builder = FAQBuilder(kbs, queue)
    c = args.faq_command
    out: Any
    if c == "generate":
        from glmkit.runtime.loaders import load_chat_model

        model = load_chat_model(settings=settings)
        try:
            made = builder.generate(
                args.name,
                model,
                per_doc=args.per_doc,
                summaries=not args.no_summaries,
                redo=args.redo,
                progress=bar,
            )
        finally:
            model.close()
        out = [m.as_dict() for m in made]
        text = (
            "\n".join(f"{m.id}  [{m.kind}] {m.question} → {m.answer[:80]}" for m in made)
            or "nothing new to process"
        )
    elif c == "list":
        items = queue.list(args.name, args.status, args.kind)
        out = [m.as_dict() for m in items]
        text = (
            "\n".join(f"{m.id}  {m.status:<9} [{m.kind}] {m.question} → {m.answer[:80]}" for m in items)
            or "no candidates"
        )
    elif c == "edit":
        m = queue.update(args.name, args.id, question=args.question, answer=args.answer)
        out = m.as_dict()
        text = f"{m.id}: {m.question} → {m.answer}"
    elif c == "publish":
        if not args.all and not args.ids:
            raise InvalidRequestError("name candidate ids to publish, or --all")
        live = builder.publish(args.name, None if args.all else args.ids)
        out = {"published": live}
        text = f"{live} FAQ entries are live in {args.name}"
    else:
        live = builder.unpublish(args.name, args.id)
        out = {"published": live}
        text = f"rejected {args.id}; {live} FAQ entries are live"
    print(json.dumps(out, ensure_ascii=False) if args.json else text)
    return 0
