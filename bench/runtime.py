"""Decode speed and time to first token: glmkit's runtime vs raw llama-cpp-python, same GGUF, same run.

    .venv/bin/python bench/runtime.py [--tokens 128] [--repeats 3] [--threads 1]

Both sides decode greedily the same prompts (rendered once by glmkit's chat format, handed to both as token
ids), with repetition penalty 1.0 so they do identical work; prompts differ between repeats so neither
side's prompt cache helps. The physical ceiling is memory bandwidth ÷ model bytes (each decoded token
reads every weight once). Prints a table and writes bench/results/runtime.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, median, memory_bandwidth_gbs, table, write_result
from glmkit.runtime.backends.llamacpp_lib import default_extra_buffers
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.loaders import load_chat_model
from glmkit.settings import Settings
from glmkit.types import FinishDelta, Message, SamplingParams, TextDelta, UsageDelta

PROMPTS = [
    "请详细介绍一下中国的四大发明，每一项都要说明它的历史意义。",
    "Write a detailed explanation of how a hash map works, including collision handling.",
    "用三段话描述一座海边小城的清晨、中午和傍晚。",
    "Explain step by step how to make a cup of pour-over coffee.",
    "请写一篇关于人工智能如何改变教育的短文。",
    "Describe the water cycle for a ten-year-old, with examples.",
]


def run_glmkit(model: EngineChatModel, prompt: str, n: int) -> dict[str, float]:
    params = SamplingParams(temperature=0, max_tokens=n, repetition_penalty=1.0, detect_loops=False)
    t0 = time.perf_counter()
    first = None
    tokens = 0
    for d in model.stream([Message("user", prompt)], params=params):
        if first is None and isinstance(d, TextDelta):
            first = time.perf_counter()
        if isinstance(d, UsageDelta):
            tokens = d.completion_tokens
        if isinstance(d, FinishDelta):
            break
    end = time.perf_counter()
    first = first or end
    return {"ttft_s": first - t0, "tokens": tokens, "decode_tok_s": (tokens - 1) / max(end - first, 1e-9)}


def run_raw(llm: Any, ids: list[int], n: int) -> dict[str, float]:
    import llama_cpp

    t0 = time.perf_counter()
    first = None
    tokens = 0
    for tok in llm.generate(ids, temp=0.0, repeat_penalty=1.0, reset=True):
        if first is None:
            first = time.perf_counter()
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
            break
        tokens += 1
        if tokens >= n:
            break
    end = time.perf_counter()
    first = first or end
    return {"ttft_s": first - t0, "tokens": tokens, "decode_tok_s": (tokens - 1) / max(end - first, 1e-9)}


def load_raw(path: str, threads: int, n_ctx: int) -> Any:
    import llama_cpp
    import llama_cpp.llama_cpp as low

    # Same model parameters as glmkit (llama.cpp's extra CPU buffers crash multi-token batches on AMX VMs).
    extra = default_extra_buffers()
    original = low.llama_model_default_params

    def params() -> Any:
        p = original()
        p.use_extra_bufts = extra
        return p

    low.llama_model_default_params = params  # llama.py reads it from the low-level module
    try:
        return llama_cpp.Llama(
            path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False, flash_attn=False
        )
    finally:
        low.llama_model_default_params = original


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default=None)
    args = ap.parse_args()

    settings = Settings(n_threads=args.threads, n_ctx=2048, **({"model": args.model} if args.model else {}))
    model = load_chat_model(settings=settings)
    assert isinstance(model, EngineChatModel)
    path = model.engine.info.path
    size = model.engine.info.size_bytes
    raw = load_raw(path, args.threads, 2048)

    results: dict[str, list[dict[str, float]]] = {"glmkit": [], "raw": []}
    import llama_cpp

    for r in range(args.repeats):
        # alternate who goes first, fresh prompts each time
        for who in ("glmkit", "raw") if r % 2 == 0 else ("raw", "glmkit"):
            prompt = PROMPTS[(2 * r + (who == "raw")) % len(PROMPTS)]
            if who == "glmkit":
                results[who].append(run_glmkit(model, prompt, args.tokens))
            else:
                ids = model.prompt_ids([Message("user", prompt)])
                results[who].append(run_raw(raw, ids, args.tokens))
        print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr)

    # correctness beside speed: the same prompt decodes to the same greedy tokens on both sides
    ids = model.prompt_ids([Message("user", PROMPTS[0])])
    params = SamplingParams(temperature=0, max_tokens=32, repetition_penalty=1.0).resolved()
    ours = list(model.engine.generate(ids, params, model.format.stop_ids(model.engine.tokenizer)))
    theirs = []
    for tok in raw.generate(ids, temp=0.0, repeat_penalty=1.0, reset=True):
        if llama_cpp.llama_vocab_is_eog(raw._model.vocab, tok) or len(theirs) >= 32:
            break
        theirs.append(tok)
    same_tokens = ours == theirs

    bw = memory_bandwidth_gbs()
    ceiling = bw * 1e9 / size
    summary = {
        k: {
            "decode_tok_s": median([x["decode_tok_s"] for x in v]),
            "ttft_s": median([x["ttft_s"] for x in v]),
            "tokens": median([x["tokens"] for x in v]),
        }
        for k, v in results.items()
    }
    ratio = summary["glmkit"]["decode_tok_s"] / summary["raw"]["decode_tok_s"]
    rows = [
        ["glmkit", summary["glmkit"]["decode_tok_s"], summary["glmkit"]["ttft_s"], f"{ratio:.3f}×"],
        ["raw llama-cpp-python", summary["raw"]["decode_tok_s"], summary["raw"]["ttft_s"], "1.000×"],
        ["ceiling (bandwidth ÷ bytes)", ceiling, "-", f"{bw:.1f} GB/s ÷ {size / 1e6:.0f} MB"],
    ]
    print(table(["runtime", "decode tok/s", "TTFT s", "vs raw"], rows))
    print(
        f"greedy tokens identical: {same_tokens}; target glmkit ≥ 0.95× raw: {'met' if ratio >= 0.95 else 'NOT met'}"
    )
    out = write_result(
        "runtime",
        {
            "machine": machine(),
            "model": path,
            "model_bytes": size,
            "threads": args.threads,
            "tokens": args.tokens,
            "repeats": args.repeats,
            "runs": results,
            "summary": summary,
            "ratio_glmkit_vs_raw": ratio,
            "memory_bandwidth_gbs": bw,
            "ceiling_tok_s": ceiling,
            "greedy_tokens_identical": same_tokens,
        },
    )
    print(f"wrote {out}")
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
