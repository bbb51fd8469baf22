"""Knowledge-base retrieval on a real Chinese corpus: the Debian FAQ (Debian package debian-faq-zh-cn,
112 questions in 16 chapters).

Each answer becomes one document (the question itself is NOT indexed); each question is a query, and a
hit is any chunk of its own answer. Reported per store (SQLite, PostgreSQL + pgvector) and retrieval
mode (BM25, vectors, hybrid, and hybrid + reranker when one is configured): recall@1, recall@5, MRR@10, query p50/p95; ingestion
chunks/s; and query p95 at 100k chunks (synthetic filler added to the same knowledge base).

    .venv/bin/python bench/kb.py              # table on stdout, JSON in bench/results/kb.json
    .venv/bin/python bench/kb.py --filler 0   # skip the 100k-chunk run
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE / "data"))

from debian_faq import extract  # noqa: E402

from _common import machine, table, write_result  # noqa: E402
from glmkit.kb.embed import load_embedder  # noqa: E402
from glmkit.kb.rerank import load_reranker  # noqa: E402
from glmkit.kb.service import KnowledgeBases  # noqa: E402
from glmkit.kb.store import DocRecord, NewChunk, Store  # noqa: E402
from glmkit.kb.stores import open_store  # noqa: E402

FAQ_DIR = "usr/share/doc/debian/FAQ/zh-cn"


def faq_dir() -> Path:
    system = Path("/") / FAQ_DIR
    if system.is_dir():
        return system
    cache = HERE / ".cache" / "debian-faq-zh-cn"
    if not (cache / FAQ_DIR).is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["apt-get", "download", "debian-faq-zh-cn"], cwd=cache, check=True, capture_output=True
        )
        deb = next(cache.glob("debian-faq-zh-cn_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(cache)], check=True)
    return cache / FAQ_DIR


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p * (len(s) - 1)))]


def evaluate(kbs: KnowledgeBases, qa: list[dict[str, Any]], mode: str, rerank: bool) -> dict[str, Any]:
    r1 = r5 = 0
    rr = 0.0
    times = []
    for item in qa:
        t0 = time.perf_counter()
        hits = kbs.search(["faq"], item["question"], k=10, mode=mode, rerank=rerank)  # type: ignore[arg-type]
        times.append(time.perf_counter() - t0)
        docs = [h.chunk.source for h in hits]
        # distinct documents in rank order (several chunks of one answer count once)
        seen: list[str] = []
        for d in docs:
            if d not in seen:
                seen.append(d)
        if item["source"] in seen:
            rank = seen.index(item["source"]) + 1
            r1 += rank == 1
            r5 += rank <= 5
            rr += 1.0 / rank
    n = len(qa)
    return {
        "recall@1": round(r1 / n, 3),
        "recall@5": round(r5 / n, 3),
        "mrr@10": round(rr / n, 3),
        "p50_ms": round(1000 * statistics.median(times), 1),
        "p95_ms": round(1000 * pct(times, 0.95), 1),
    }


def add_filler(store: Store, n: int, dim: int, vocab: list[str]) -> float:
    """``n`` synthetic chunks (random unit vectors, random words from the corpus) in documents of 1000."""
    rng = np.random.default_rng(0)
    pyrng = random.Random(0)
    t0 = time.perf_counter()
    for d in range(0, n, 1000):
        vecs = rng.standard_normal((min(1000, n - d), dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        chunks = []
        for v in vecs:
            words = pyrng.choices(vocab, k=40)
            chunks.append(NewChunk("".join(words), "filler", "", "text", "", " ".join(words), v))
        store.replace_document(DocRecord("", "faq", f"filler-{d}", "0", 0, time.time(), 0), chunks)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default="sqlite,pgvector")
    ap.add_argument("--filler", type=int, default=100_000, help="chunks for the scale run (0: skip)")
    ap.add_argument("--chunk-size", type=int, default=400)
    ap.add_argument(
        "--reranker",
        default="none",
        help="none, or rerank:URL#model (a vLLM/llama.cpp/TEI rerank endpoint): adds a hybrid+rerank row",
    )
    args = ap.parse_args()

    records = extract(faq_dir())
    work = Path(tempfile.mkdtemp(prefix="glmkit-kb-bench-"))
    docs = work / "docs"
    docs.mkdir()
    qa = []
    for r in records:
        p = docs / f"{r['num']}.txt"
        p.write_text(r["answer"], "utf-8")
        qa.append({"question": r["question"], "source": str(p)})
    print(
        f"Debian FAQ: {len(qa)} questions, answers of {sum(len(r['answer']) for r in records)} characters\n"
    )

    embedder = load_embedder()
    reranker = load_reranker(args.reranker)
    out: dict[str, Any] = {
        "machine": machine(),
        "questions": len(qa),
        "reranker": getattr(reranker, "name", None),
        "stores": {},
    }
    rows = []
    scale_rows = []
    for store_name in args.stores.split(","):
        pg = None
        if store_name == "pgvector":
            from pg import fresh_database, postgres

            pg = postgres()
            uri = fresh_database(pg.__enter__(), "kbbench")
            store = open_store(uri, work)
        else:
            store = open_store(f"sqlite:///{work / 'kb.sqlite3'}", work)
        try:
            kbs = KnowledgeBases(store, lambda: embedder, lambda: reranker, chunk_size=args.chunk_size)
            kbs.create("faq")
            report = kbs.add("faq", [docs])
            failed = [f for f in report.files if f.status == "failed"]
            assert not failed, failed
            res: dict[str, Any] = {
                "chunks": report.chunks,
                "ingest_s": round(report.seconds, 2),
                "chunks_per_s": round(report.chunks / report.seconds, 1),
                "modes": {},
            }
            modes = [("bm25", "bm25", False), ("vector", "vector", False), ("hybrid", "hybrid", False)]
            if reranker is not None:
                modes.append(("hybrid+rerank", "hybrid", True))
            for label, mode, rr in modes:
                m = evaluate(kbs, qa, mode, rr)
                res["modes"][label] = m
                rows.append(
                    [store_name, label, m["recall@1"], m["recall@5"], m["mrr@10"], m["p50_ms"], m["p95_ms"]]
                )
            if args.filler:
                vocab = sorted(
                    {t for f in report.files for t in Path(f.source).read_text("utf-8")[:2000]} - {" ", "\n"}
                )
                fill_s = add_filler(store, args.filler, embedder.dim, vocab)
                m = evaluate(kbs, qa, "hybrid", reranker is not None)
                res["scale"] = {
                    "chunks": store.get_kb("faq").n_chunks,
                    "fill_s": round(fill_s, 1),
                    "retrieval": m,
                }
                scale_rows.append(
                    [store_name, store.get_kb("faq").n_chunks, m["recall@5"], m["p50_ms"], m["p95_ms"]]
                )
            out["stores"][store_name] = res
            print(
                f"{store_name}: {report.chunks} chunks ingested in {report.seconds:.1f} s ({res['chunks_per_s']} chunks/s)"
            )
        finally:
            store.close()
            if pg is not None:
                pg.__exit__(None, None, None)
    print()
    print(table(["store", "retrieval", "recall@1", "recall@5", "MRR@10", "p50 ms", "p95 ms"], rows))
    if scale_rows:
        print()
        label = "hybrid+rerank" if reranker is not None else "hybrid"
        print(table(["store", "chunks", f"recall@5 ({label})", "p50 ms", "p95 ms"], scale_rows))
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nwritten: {write_result('kb', out)}")


if __name__ == "__main__":
    main()
