"""Serving throughput: glmkit serve vs llama-cpp-python's own server, same GGUF, same threads, one run.

For 1, 4 and 8 concurrent streaming clients, each client sends ``--rounds`` chat requests back to back
(greedy, ``--max-tokens`` each, distinct Chinese prompts). Reported per server and concurrency:
aggregate decode tokens/s (completion tokens of all requests / wall time) and time to first token
(first content chunk) p50/p95. The two servers run one after the other, never together.

    .venv/bin/python bench/serve.py            # table on stdout, JSON in bench/results/serve.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import machine, table, write_result  # noqa: E402
from glmkit.runtime.models import prepare_embedded  # noqa: E402
from glmkit.settings import DEFAULT_MODEL, Settings  # noqa: E402
from peers import free_port, llama_cpp_server, wait_ready  # noqa: E402

TOPICS = ["春天", "长城", "大海", "茶", "月亮", "书法", "熊猫", "高铁", "秋天", "围棋", "黄河", "故宫"]


def prompt(i: int) -> str:
    return f"请写一段大约两百字的短文，主题是{TOPICS[i % len(TOPICS)]}。"


@contextmanager
def glmkit_server(threads: int, parallel: int) -> Iterator[str]:
    port = free_port()
    home = tempfile.mkdtemp(prefix="glmkit-bench-")
    env = {**os.environ, "GLMKIT_HOME": home, "GLMKIT_RATE_LIMIT_RPM": "0"}
    cmd = [sys.executable, "-m", "glmkit", "serve", "--port", str(port), "--threads", str(threads)]
    cmd += ["--parallel", str(parallel), "--ctx", "2048"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(proc, base, 120, "glmkit serve")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def one_request(base: str, model: str, i: int, max_tokens: int) -> tuple[float, int, float]:
    """(time to first token, completion tokens, total seconds) of one streamed chat request."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt(i)}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.monotonic()
    ttft = None
    chunks = 0
    usage = None
    with httpx.stream("POST", f"{base}/chat/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            obj = json.loads(line[6:])
            if obj.get("usage"):
                usage = obj["usage"]
            for c in obj.get("choices", []):
                if c.get("delta", {}).get("content"):
                    chunks += 1
                    if ttft is None:
                        ttft = time.monotonic() - t0
    n = int(usage["completion_tokens"]) if usage else chunks
    return (ttft if ttft is not None else time.monotonic() - t0), n, time.monotonic() - t0


def load(base: str, model: str, clients: int, rounds: int, max_tokens: int) -> dict[str, Any]:
    results: list[tuple[float, int, float]] = []
    lock = threading.Lock()

    errors: list[str] = []

    def client(k: int) -> None:
        for j in range(rounds):
            try:
                res = one_request(base, model, k * rounds + j, max_tokens)
            except httpx.HTTPError as e:
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                continue
            with lock:
                results.append(res)

    one_request(base, model, 99, 4)  # warm-up (loads pages, fills caches)
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    ttfts = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)

    def pct(p: float) -> float:
        return ttfts[min(len(ttfts) - 1, round(p * (len(ttfts) - 1)))]

    return {
        "clients": clients,
        "requests": len(results),
        "errors": errors,
        "tokens": tokens,
        "wall_s": round(wall, 2),
        "tok_s": round(tokens / wall, 2),
        "ttft_p50_s": round(pct(0.5), 3),
        "ttft_p95_s": round(pct(0.95), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--rounds", type=int, default=2, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",")]
    gguf = str(prepare_embedded(DEFAULT_MODEL, Settings().models_dir))
    out: dict[str, Any] = {"machine": machine(), "gguf": gguf, "threads": args.threads, "runs": {}}

    runs: dict[str, list[dict[str, Any]]] = {}
    # interrupt_requests=False: by default llama_cpp.server aborts a running stream when another request
    # arrives; queued (its lock) is its fair concurrent behaviour
    peer_args = ["--n_threads", str(args.threads), "--model_alias", "peer", "--interrupt_requests", "False"]
    with llama_cpp_server(gguf, *peer_args) as base:
        runs["llama_cpp.server"] = [load(base, "peer", c, args.rounds, args.max_tokens) for c in levels]
    with glmkit_server(args.threads, max(levels)) as base:
        runs["glmkit"] = [load(base, DEFAULT_MODEL, c, args.rounds, args.max_tokens) for c in levels]
    out["runs"] = runs

    for name, rs in runs.items():
        for r in rs:
            if r["errors"]:
                print(
                    f"{name} at {r['clients']} clients: {len(r['errors'])} failed requests: {r['errors'][0]}"
                )
    rows = []
    for i, c in enumerate(levels):
        g, p = runs["glmkit"][i], runs["llama_cpp.server"][i]
        rows.append(
            [
                c,
                g["tok_s"],
                p["tok_s"],
                round(g["tok_s"] / p["tok_s"], 2),
                g["ttft_p50_s"],
                p["ttft_p50_s"],
                g["ttft_p95_s"],
                p["ttft_p95_s"],
            ]
        )
    print(
        f"glmkit serve vs llama_cpp.server, {args.threads} threads, {args.rounds} requests per client, "
        f"{args.max_tokens} max tokens, greedy\n"
    )
    print(
        table(
            [
                "clients",
                "glmkit tok/s",
                "peer tok/s",
                "ratio",
                "glmkit TTFT p50",
                "peer TTFT p50",
                "glmkit TTFT p95",
                "peer TTFT p95",
            ],
            rows,
        )
    )
    out["summary"] = [
        dict(
            zip(
                [
                    "clients",
                    "glmkit_tok_s",
                    "peer_tok_s",
                    "ratio",
                    "glmkit_ttft_p50",
                    "peer_ttft_p50",
                    "glmkit_ttft_p95",
                    "peer_ttft_p95",
                ],
                r,
                strict=True,
            )
        )
        for r in rows
    ]
    print(f"\nwritten: {write_result('serve', out)}")


if __name__ == "__main__":
    main()
