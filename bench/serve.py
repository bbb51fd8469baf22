"""Serving throughput: glmkit serve against llama.cpp's own llama-server and llama-cpp-python's server,
same GGUF, same threads, same client and prompts, one server after the other in one run.

For 1, 4 and 8 concurrent streaming clients, each client sends ``--rounds`` chat requests back to back
(greedy, ``--max-tokens`` each, distinct Chinese prompts). Reported per server and concurrency:
aggregate decode tokens/s (completion tokens of all requests / wall time), time to first token (first
content chunk) p50/p95, the time between tokens, content chunks per token, and streams completed (a
finish reason and ``[DONE]`` seen). glmkit runs twice: with its content filter at the default (``flag``,
every shipped word list scanning the stream) and with it off, so the filter's cost is measured too.

Peers: ``llama-server`` (continuous batching: ``-np 8 -c 8192 -t 2``; built once by
``bench/build_llama_server.sh`` from the llama.cpp vendored in the pinned llama-cpp-python sdist, or
``--llama-server PATH``) and ``python -m llama_cpp.server`` (one request at a time).

This machine's speed drifts by ±15% from minute to minute, so ``--repeats`` rounds run every server once
each, in a rotated order, and the table shows each figure's median over the rounds (every round is in
the JSON).

    .venv/bin/python bench/serve.py            # table on stdout, JSON in bench/results/serve.json

``--py-spy DIR`` records every glmkit server with py-spy during each measured load (not the warm-up),
with each thread's CPU time from /proc; ``bench/profile_shares.py`` says where the time went.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
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
def process(
    cmd: list[str], base: str, what: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below; a pipe could fill and block the server
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_ready(proc, base, 180, what, log)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def link_model(gguf: str, home: str) -> None:
    """The verified GGUF (and its stamp) hard-linked into a fresh home, so the server neither joins and
    hashes a 0.5 GB copy at start nor leaves one behind (copied when a link is not possible)."""
    models = Path(home) / "models"
    models.mkdir(parents=True, exist_ok=True)
    for src in (Path(gguf), Path(gguf + ".verified")):
        try:
            os.link(src, models / src.name)
        except OSError:
            shutil.copy2(src, models / src.name)


@contextmanager
def glmkit_server(gguf: str, threads: int, parallel: int, content_filter: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    home = tempfile.mkdtemp(prefix="glmkit-bench-")
    try:
        link_model(gguf, home)
        env = {
            **os.environ,
            "GLMKIT_HOME": home,
            "GLMKIT_RATE_LIMIT_RPM": "0",
            "GLMKIT_CONTENT_FILTER": content_filter,
        }
        cmd = [sys.executable, "-m", "glmkit", "serve", "--port", str(port), "--threads", str(threads)]
        cmd += ["--parallel", str(parallel), "--ctx", "2048"]
        with process(cmd, f"http://127.0.0.1:{port}/v1", "glmkit serve", env) as started:
            yield started
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def llama_server(binary: str, gguf: str, threads: int, parallel: int, ctx: int) -> Iterator[str]:
    port = free_port()
    cmd = [binary, "-m", gguf, "--host", "127.0.0.1", "--port", str(port), "-a", "peer"]
    cmd += ["-np", str(parallel), "-c", str(ctx), "-t", str(threads), "-tb", str(threads)]
    with process(cmd, f"http://127.0.0.1:{port}/v1", "llama-server") as (base, _):
        yield base


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each live thread of ``pid`` so far."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def process_cpu(pid: int) -> float:
    """CPU seconds of the whole process so far (threads that have ended included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def profiled(pid: int, prefix: Path, rate: int, native: bool = True) -> Iterator[None]:
    """py-spy (idle samples, per thread) on ``pid`` for the block, plus each thread's CPU time from /proc
    over exactly the block: ``prefix``.txt (raw stacks) and ``prefix``-cpu.json. ``native``: with
    llama.cpp's frames, pausing the process for each sample; otherwise Python frames only, read without
    stopping it. Either way py-spy's own CPU competes with llama.cpp's threads on 2 cores: the 8-client
    run was ~25% slower with native frames at 50 Hz and ~16% slower with Python frames at 100 Hz."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy") or "py-spy"
    cmd = [spy, "record", "--native" if native else "--nonblocking", "--idle", "--threads"]
    cmd += ["-r", str(rate), "--format", "raw"]
    with open(f"{prefix}.log", "wb") as log:
        rec = subprocess.Popen([*cmd, "-o", f"{prefix}.txt", "-p", str(pid)], stdout=log, stderr=log)
        time.sleep(0.5)  # attached and sampling before the load starts
        c0, p0, t0 = thread_cpu(pid), process_cpu(pid), time.monotonic()
        try:
            yield
        finally:
            wall = time.monotonic() - t0
            c1, p1 = thread_cpu(pid), process_cpu(pid)
            rec.send_signal(signal.SIGINT)  # py-spy writes its file on ^C
            try:
                rec.wait(timeout=60)
            except subprocess.TimeoutExpired:
                rec.kill()
            threads = {tid: round(c1[tid] - c0.get(tid, 0.0), 3) for tid in c1}
            cpu = {"wall_s": round(wall, 3), "process_cpu_s": round(p1 - p0, 3), "thread_cpu_s": threads}
            Path(f"{prefix}-cpu.json").write_text(json.dumps(cpu, indent=1) + "\n")


def find_llama_server(given: str | None) -> str:
    if given:
        return given
    built = subprocess.run(
        ["bash", str(HERE / "build_llama_server.sh")], check=True, capture_output=True, text=True
    )
    return built.stdout.strip().splitlines()[-1]


def one_request(base: str, model: str, i: int, max_tokens: int) -> dict[str, Any]:
    """One streamed chat request: time to first content, token count, chunk count, whether it finished."""
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
    finished = done = False
    with httpx.stream("POST", f"{base}/chat/completions", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line == "data: [DONE]":
                done = True
                continue
            if not line.startswith("data: "):
                continue
            obj = json.loads(line[6:])
            if obj.get("usage"):
                usage = obj["usage"]
            for c in obj.get("choices", []):
                if c.get("delta", {}).get("content"):
                    chunks += 1
                    if ttft is None:
                        ttft = time.monotonic() - t0
                if c.get("finish_reason"):
                    finished = True
    total = time.monotonic() - t0
    n = int(usage["completion_tokens"]) if usage else chunks
    first = ttft if ttft is not None else total
    return {
        "ttft": first,
        "tokens": n,
        "chunks": chunks,
        "total": total,
        "itl": (total - first) / (n - 1) if n > 1 else 0.0,
        "completed": finished and done,
    }


def load(
    base: str,
    model: str,
    clients: int,
    rounds: int,
    max_tokens: int,
    around: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
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
    with around():  # a profiler, when asked for: the measured part only
        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
    ttfts = sorted(r["ttft"] for r in results) or [float("nan")]
    tokens = sum(r["tokens"] for r in results)

    def pct(p: float) -> float:
        return ttfts[min(len(ttfts) - 1, round(p * (len(ttfts) - 1)))]

    return {
        "clients": clients,
        "requests": clients * rounds,
        "completed": sum(1 for r in results if r["completed"]),
        "errors": errors,
        "tokens": tokens,
        "chunks_per_token": round(sum(r["chunks"] for r in results) / max(1, tokens), 3),
        "wall_s": round(wall, 2),
        "tok_s": round(tokens / wall, 2),
        "ttft_p50_s": round(pct(0.5), 3),
        "ttft_p95_s": round(pct(0.95), 3),
        "itl_p50_s": round(statistics.median(r["itl"] for r in results), 4) if results else None,
    }


SERVERS = ["llama-server", "glmkit", "glmkit (filter off)", "llama_cpp.server"]
MEDIAN_KEYS = ["tok_s", "ttft_p50_s", "ttft_p95_s", "itl_p50_s", "chunks_per_token"]


def median_of(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """One level's figures over the rounds: the median of each, every stream counted."""
    out = dict(rs[0])
    for k in MEDIAN_KEYS:
        vals = [r[k] for r in rs if r[k] is not None]
        out[k] = round(statistics.median(vals), 4) if vals else None
    out["requests"] = sum(r["requests"] for r in rs)
    out["completed"] = sum(r["completed"] for r in rs)
    out["errors"] = [e for r in rs for e in r["errors"]]
    out["tok_s_rounds"] = [r["tok_s"] for r in rs]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--rounds", type=int, default=2, help="requests per client")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--llama-server", help="a llama-server binary (default: build it once, see the docstring)")
    ap.add_argument("--ctx", type=int, default=8192, help="llama-server's -c (shared by its -np slots)")
    ap.add_argument("--only", help=f"comma-separated subset of: {', '.join(SERVERS)}")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of every server (medians reported)")
    ap.add_argument(
        "--py-spy",
        metavar="DIR",
        help="record every glmkit server with py-spy during each measured load (raw stacks and each "
        "thread's CPU time into DIR; summarise with bench/profile_shares.py)",
    )
    ap.add_argument("--py-spy-rate", type=int, default=50, help="py-spy samples per second")
    ap.add_argument(
        "--py-spy-python-only",
        action="store_true",
        help="sample Python frames only, without pausing the server (no llama.cpp frames, less overhead)",
    )
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",")]
    wanted = args.only.split(",") if args.only else SERVERS
    gguf = str(prepare_embedded(DEFAULT_MODEL, Settings().models_dir))
    out: dict[str, Any] = {
        "machine": machine(),
        "gguf": gguf,
        "threads": args.threads,
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
    }
    parallel = max(levels)

    def run(name: str, base: str, model: str, pid: int | None, k: int) -> list[dict[str, Any]]:
        rs = []
        for c in levels:
            around: Callable[[], AbstractContextManager[Any]] = nullcontext
            if args.py_spy and pid is not None:
                slug = name.replace(" (filter off)", "-filter-off")
                prefix = Path(args.py_spy) / f"{slug}-c{c}-r{k + 1}"
                native = not args.py_spy_python_only
                around = functools.partial(profiled, pid, prefix, args.py_spy_rate, native)
            r = load(base, model, c, args.rounds, args.max_tokens, around)
            print(f"  {name} {c} clients: {r['tok_s']} tok/s, TTFT p50 {r['ttft_p50_s']} s", flush=True)
            rs.append(r)
        return rs

    binary = find_llama_server(args.llama_server) if "llama-server" in wanted else None
    out["llama_server"] = binary

    @contextmanager
    def started(name: str) -> Iterator[tuple[str, str, int | None]]:
        if name == "llama-server":
            assert binary is not None
            with llama_server(binary, gguf, args.threads, parallel, args.ctx) as base:
                yield base, "peer", None
        elif name.startswith("glmkit"):
            flt = "off" if "off" in name else "flag"
            with glmkit_server(gguf, args.threads, parallel, flt) as (base, pid):
                yield base, DEFAULT_MODEL, pid
        else:
            # interrupt_requests=False: by default llama_cpp.server aborts a running stream when another
            # request arrives; queued (its lock) is its fair concurrent behaviour
            peer = ["--n_threads", str(args.threads), "--model_alias", "peer", "--interrupt_requests", "False"]
            with llama_cpp_server(gguf, *peer) as base:
                yield base, "peer", None

    rounds: list[dict[str, list[dict[str, Any]]]] = []
    order = [n for n in SERVERS if n in wanted]
    for k in range(args.repeats):
        this: dict[str, list[dict[str, Any]]] = {}
        for name in order[k % len(order) :] + order[: k % len(order)]:
            print(f"round {k + 1}: {name}", flush=True)
            with started(name) as (base, model, pid):
                this[name] = run(name, base, model, pid, k)
        rounds.append(this)
    out["rounds"] = rounds
    runs = {name: [median_of([r[name][i] for r in rounds]) for i in range(len(levels))] for name in order}
    out["runs"] = runs

    for name, rs in runs.items():
        for r in rs:
            if r["errors"]:
                print(f"{name} at {r['clients']} clients: {len(r['errors'])} failed requests: {r['errors'][0]}")

    print(
        f"\n{args.threads} threads, {args.rounds} requests per client, {args.max_tokens} max tokens, greedy, "
        f"one server at a time, medians of {args.repeats} rounds\n"
    )
    rows = []
    for name, rs in runs.items():
        for r in rs:
            rows.append(
                [
                    name,
                    r["clients"],
                    r["tok_s"],
                    f"{min(r['tok_s_rounds'])}–{max(r['tok_s_rounds'])}",
                    r["ttft_p50_s"],
                    r["ttft_p95_s"],
                    r["itl_p50_s"],
                    r["chunks_per_token"],
                    f"{r['completed']}/{r['requests']}",
                ]
            )
    print(table(["server", "clients", "tok/s", "tok/s range", "TTFT p50", "TTFT p95", "ITL p50", "chunks/token", "completed"], rows))

    summary = []
    if "glmkit" in runs:
        for i, c in enumerate(levels):
            g = runs["glmkit"][i]
            s: dict[str, Any] = {"clients": c}
            for peer in ("llama-server", "llama_cpp.server"):
                if peer in runs:
                    p = runs[peer][i]
                    s[f"tok_s_vs_{peer}"] = round(g["tok_s"] / p["tok_s"], 3)
                    s[f"ttft_p50_vs_{peer}"] = round(g["ttft_p50_s"] / p["ttft_p50_s"], 3)
            if "glmkit (filter off)" in runs:
                off = runs["glmkit (filter off)"][i]
                s["filter_cost_pct"] = round(100 * (1 - g["tok_s"] / off["tok_s"]), 1)
                itl = off["itl_p50_s"] or float("nan")
                s["filter_ttft_tokens"] = round((g["ttft_p50_s"] - off["ttft_p50_s"]) / itl, 2) if itl else None
            summary.append(s)
        print("\nglmkit (filter at its default) against each peer; the filter's cost against glmkit with it off\n")
        keys = sorted({k for s in summary for k in s if k != "clients"})
        print(table(["clients", *keys], [[s["clients"], *[s.get(k, "") for k in keys]] for s in summary]))
    out["summary"] = summary
    print(f"\nwritten: {write_result('serve', out)}")


if __name__ == "__main__":
    main()
