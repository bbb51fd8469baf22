"""Where a glmkit server's time goes, from the profiles ``bench/serve.py --py-spy DIR`` records.

Each measured load leaves ``DIR/<server>-c<clients>-r<round>.txt`` (py-spy's raw stacks: native frames,
idle samples included, one line per thread and stack) and ``...-cpu.json`` (every thread's CPU seconds
from /proc over exactly the load). This prints, for each profile and summed over them:

* the engine's worker thread (``llamacpp-*``): the share of its samples inside ``llama_decode`` (llama.cpp's
  native decode, the worker computing one of its ``-t`` shares of every step), in sampling (``_sample``),
  in the rest of a step's Python (the batch, queues, finishing sequences), in admission (prefix reuse,
  KV copies), and waiting for work; the native functions it spends ``llama_decode`` in;
* the event loop (``MainThread``: uvicorn, routes, the content filter, SSE): its CPU share from /proc and
  what its busy samples do;
* the per-request reader threads and llama.cpp's own compute threads (native only, /proc only).

    .venv/bin/python bench/profile_shares.py /tmp/prof/glmkit-c8-r1 /tmp/prof/glmkit-c8-r2
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

LINE = re.compile(r"^thread \((\d+)\): ([^;]*);?(.*) (\d+)$")
ENGINE = Path(__file__).resolve().parent.parent / "src/glmkit/runtime/backends/llamacpp.py"
# the lines of the engine that call llama_decode: a Python-only profile (no native frames) shows a thread
# inside llama_decode as the Python frame of its ctypes call
DECODE_CALLS = {
    f"llamacpp.py:{i})"
    for i, line in enumerate(ENGINE.read_text().splitlines(), 1)
    if "llama_decode(" in line
}

WORKER_KINDS = ["llama_decode", "sampling", "step Python", "admit / KV copy", "waiting for work", "other"]
LOOP_KINDS = ["content filter", "SSE chunk (json)", "audit", "uvicorn / h11", "asyncio, starlette, rest"]


def frames_of(stack: str) -> list[str]:
    return stack.split(";") if stack else []


def worker_kind(fs: list[str]) -> str:
    if any(f.startswith("llama_decode ") for f in fs):
        return "llama_decode"
    if fs and ".py:" in fs[-1] and any(fs[-1].endswith(c) for c in DECODE_CALLS):
        return "llama_decode"
    if any(f.startswith("_sample (") for f in fs):
        return "sampling"
    if any(f.startswith(("_admit (", "_compact (", "_copy_kv (", "_move (")) for f in fs):
        return "admit / KV copy"
    if any(f.startswith("_step (") for f in fs):
        return "step Python"
    if any(f.startswith("_run (") for f in fs):
        return "waiting for work" if any(f.startswith("get (queue.py") for f in fs) else "step Python"
    return "other"


def loop_idle(fs: list[str]) -> bool:
    return any(f.startswith(("select (selectors.py", "epoll_wait", "poll (selectors.py")) for f in fs)


def loop_kind(fs: list[str]) -> str:
    joined = ";".join(fs)
    if re.search(r"\((filter|guard|ahocorasick)\.py:", joined):
        return "content filter"
    if "_sse (openai.py" in joined or "dumps (" in joined:
        return "SSE chunk (json)"
    if "(audit.py:" in joined:
        return "audit"
    if re.search(r"\((h11_impl|httptools_impl|_connection|_readers|_writers|_events)\.py:", joined):
        return "uvicorn / h11"
    return "asyncio, starlette, rest"


def decode_kind(fs: list[str]) -> str:
    """What a sample inside ``llama_decode`` computes (ggml's static functions have no symbol: the
    named frames around them tell)."""
    joined = ";".join(fs)
    if fs and "(libgomp" in fs[-1]:
        return "OpenMP barrier / spin (libgomp)"
    if "llamafile_sgemm" in joined:
        return "mul_mat: llamafile_sgemm"
    if "repack" in joined or "ggml_gemv_" in joined or "ggml_gemm_" in joined:
        return "mul_mat: repacked Q4_K gemv/gemm"
    if "ggml_compute_forward_mul_mat" in joined or "ggml_vec_dot_" in joined:
        return "mul_mat: vec_dot"
    m = re.search(r"(ggml_compute_forward_\w+)", joined)
    if m:
        return f"other op: {m[1]}"
    if "build_graph" in joined or "ggml_graph_plan" in joined or "ggml_backend_sched" in joined:
        return "graph build / plan"
    return "other"


def reader_idle(fs: list[str]) -> bool:
    return any(f.startswith(("get (queue.py", "wait (threading.py")) for f in fs)


def leaf(fs: list[str], python: bool = False) -> str:
    for f in reversed(fs):
        is_py = ".py:" in f
        if is_py or not python:
            return re.sub(r"0x[0-9a-f]+ ", "? ", f)
    return "?"


def analyse(prefix: str) -> dict[str, Any]:
    stacks: list[tuple[int, str, list[str], int]] = []
    for line in Path(f"{prefix}.txt").read_text().splitlines():
        m = LINE.match(line)
        if m:
            stacks.append((int(m[1]), m[2], frames_of(m[3]), int(m[4])))
    cpu = json.loads(Path(f"{prefix}-cpu.json").read_text())
    names: dict[int, str] = {tid: name for tid, name, _, _ in stacks}
    worker: Counter[str] = Counter()
    loop: Counter[str] = Counter()
    loop_busy: Counter[str] = Counter()
    decode_leaf: Counter[str] = Counter()
    loop_leaf: Counter[str] = Counter()
    reader_busy = reader_all = 0
    for _, name, fs, n in stacks:
        if name.startswith("llamacpp-"):
            k = worker_kind(fs)
            worker[k] += n
            if k == "llama_decode":
                decode_leaf[decode_kind(fs)] += n
        elif name == "MainThread":
            if loop_idle(fs):
                loop["idle"] += n
            else:
                loop["busy"] += n
                loop_busy[loop_kind(fs)] += n
                loop_leaf[leaf(fs, python=True)] += n
        elif name == "glmkit-request":
            reader_all += n
            reader_busy += 0 if reader_idle(fs) else n
    wall = cpu["wall_s"]
    threads = {int(t): c for t, c in cpu["thread_cpu_s"].items()}
    by_role: Counter[str] = Counter()
    for tid, c in threads.items():
        name = names.get(tid, "")
        role = (
            "worker"
            if name.startswith("llamacpp-")
            else "event loop"
            if name == "MainThread"
            else "llama.cpp compute (native)"
            if tid not in names
            else "other Python threads"
        )
        by_role[role] += c
    by_role["threads that ended during the load"] = max(0.0, cpu["process_cpu_s"] - sum(threads.values()))
    return {
        "wall_s": wall,
        "process_cpu_s": cpu["process_cpu_s"],
        "cpu_s": dict(by_role),
        "worker": dict(worker),
        "decode_leaf": dict(decode_leaf),
        "loop": dict(loop),
        "loop_busy": dict(loop_busy),
        "loop_leaf": dict(loop_leaf),
        "reader_busy": reader_busy,
        "reader_all": reader_all,
    }


def pct(a: float, b: float) -> str:
    return f"{100 * a / b:5.1f}%" if b else "  n/a"


def report(title: str, r: dict[str, Any]) -> None:
    wall = r["wall_s"]
    print(
        f"\n== {title}: load {wall:.2f} s, server process CPU {r['process_cpu_s']:.2f} s "
        f"({r['process_cpu_s'] / wall:.2f} cores)"
    )
    print("CPU by thread (from /proc, share of one core over the load):")
    for role, c in sorted(r["cpu_s"].items(), key=lambda kv: -kv[1]):
        print(f"  {role:38s} {c:7.2f} s  {pct(c, wall)}")
    w = r["worker"]
    total = sum(w.values())
    busy = total - w.get("waiting for work", 0)
    print(f"worker thread, {total} samples, {busy} of them not waiting for work:")
    for k in WORKER_KINDS:
        of_busy = "" if k == "waiting for work" else f"  {pct(w.get(k, 0), busy)} of the rest"
        print(f"  {k:38s} {pct(w.get(k, 0), total)} of all{of_busy}")
    dl = Counter(r["decode_leaf"])
    nd = sum(dl.values())
    print("  inside llama_decode:")
    for f, n in dl.most_common(10):
        print(f"    {f[:60]:60s} {pct(n, nd)}")
    lp = r["loop"]
    lt = sum(lp.values())
    print(
        f"event loop (MainThread), {lt} samples; not in select (running or waiting for the GIL): {pct(lp.get('busy', 0), lt)}"
    )
    for k in LOOP_KINDS:
        print(f"  {k:38s} {pct(r['loop_busy'].get(k, 0), lt)} of all samples")
    print("  busiest innermost Python functions:")
    for f, n in Counter(r["loop_leaf"]).most_common(6):
        print(f"    {f[:70]:70s} {pct(n, lt)}")
    rate = r["reader_all"] and r["reader_busy"] / r["reader_all"]
    print(f"request reader threads (glmkit-request): busy in {pct(rate, 1)} of their samples")


def merge(rs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "wall_s": sum(r["wall_s"] for r in rs),
        "process_cpu_s": sum(r["process_cpu_s"] for r in rs),
    }
    for key in ("cpu_s", "worker", "decode_leaf", "loop", "loop_busy", "loop_leaf"):
        c: Counter[str] = Counter()
        for r in rs:
            c.update(r[key])
        out[key] = dict(c)
    out["reader_busy"] = sum(r["reader_busy"] for r in rs)
    out["reader_all"] = sum(r["reader_all"] for r in rs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prefixes", nargs="+", help="profile prefixes (the .txt without its suffix)")
    args = ap.parse_args()
    prefixes = [p.removesuffix(".txt") for p in args.prefixes]
    rs = [analyse(p) for p in prefixes]
    for p, r in zip(prefixes, rs, strict=True):
        report(Path(p).name, r)
    if len(rs) > 1:
        report(f"all {len(rs)} profiles", merge(rs))


if __name__ == "__main__":
    main()
