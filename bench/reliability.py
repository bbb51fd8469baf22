"""Reliability figures in one table: a load run on the real server and model, then the reliability suite.

1. Load: `glmkit serve` (embedded model, --parallel 8) with a knowledge base made of this repo's docs;
   16 concurrent clients for --seconds (120) of mixed traffic — 50% streamed chat (max_tokens 48),
   25% embeddings, 25% knowledge-base search. Errors (non-2xx or broken streams), p50/p95 latency per
   kind, and the server's RSS after warm-up, at the end and at its peak (sampled each second). The memory
   bound stated: the end RSS within 10% (+64 MiB) of the warmed-up RSS.
2. The suite under tests/reliability/ (schemathesis fuzzing of the OpenAPI schema, SIGKILL during session
   writes, a vanishing model file, hostile input) plus the knowledge-base kill test and the sandbox tests,
   each with its outcome and time; schemathesis's own counts (operations, generated requests, failures).

    .venv/bin/python bench/reliability.py                # table on stdout, JSON in bench/results/reliability.json
    .venv/bin/python bench/reliability.py --seconds 30   # a shorter load run
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))

from _common import machine, table, write_result  # noqa: E402
from peers import free_port, wait_ready  # noqa: E402

QUESTIONS = [
    "怎么创建知识库？",
    "如何启动服务？",
    "摘要支持哪些模式？",
    "代码解释器有什么限制？",
    "怎样导出审计日志？",
]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def load_run(seconds: float, clients: int, threads: int) -> dict[str, Any]:
    port = free_port()
    home = tempfile.mkdtemp(prefix="glmkit-reliability-")
    env = {**os.environ, "GLMKIT_HOME": home, "GLMKIT_RATE_LIMIT_RPM": "0", "GLMKIT_MAX_QUEUE": "64"}
    cmd = [sys.executable, "-m", "glmkit", "serve", "--port", str(port), "--threads", str(threads)]
    cmd += ["--parallel", "8", "--ctx", "2048"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, f"{base}/v1", 180, "glmkit serve")
        model = httpx.get(f"{base}/v1/models").json()["data"][0]["id"]
        httpx.post(f"{base}/v1/kb", json={"name": "docs"}).raise_for_status()
        files = [("files", (f.name, f.read_bytes())) for f in sorted((ROOT / "docs").glob("*.md"))]
        httpx.post(f"{base}/v1/kb/docs/documents", files=files, timeout=600).raise_for_status()
        # warm up each kind once, then take the baseline memory
        httpx.post(
            f"{base}/v1/embeddings", json={"model": "multilingual-e5-small", "input": "预热"}, timeout=120
        )
        httpx.post(f"{base}/v1/kb/docs/search", json={"query": "预热"}, timeout=120)
        httpx.post(f"{base}/v1/chat/completions", timeout=300,
                   json={"model": model, "messages": [{"role": "user", "content": "你好"}], "max_tokens": 8})  # fmt: skip
        rss_start = rss_kib(proc.pid)
        peak = [rss_start]
        stop = time.monotonic() + seconds
        lat: dict[str, list[float]] = {"chat": [], "embeddings": [], "kb search": []}
        errors: list[str] = []
        lock = threading.Lock()

        def sampler() -> None:
            while time.monotonic() < stop:
                peak[0] = max(peak[0], rss_kib(proc.pid))
                time.sleep(1)

        def client(i: int) -> None:
            rng = random.Random(i)
            with httpx.Client(base_url=base, timeout=300) as c:
                while time.monotonic() < stop:
                    kind = rng.choices(["chat", "embeddings", "kb search"], [2, 1, 1])[0]
                    q = rng.choice(QUESTIONS)
                    t = time.perf_counter()
                    try:
                        if kind == "chat":
                            body = {"model": model, "stream": True, "max_tokens": 48,
                                    "messages": [{"role": "user", "content": q}]}  # fmt: skip
                            with c.stream("POST", "/v1/chat/completions", json=body) as r:
                                lines = [x for x in r.iter_lines() if x.startswith("data: ")]
                                ok = r.status_code == 200 and lines and lines[-1] == "data: [DONE]"
                                status = r.status_code
                        elif kind == "embeddings":
                            r = c.post(
                                "/v1/embeddings", json={"model": "multilingual-e5-small", "input": [q] * 4}
                            )
                            ok, status = r.status_code == 200, r.status_code
                        else:
                            r = c.post("/v1/kb/docs/search", json={"query": q, "k": 5})
                            ok, status = r.status_code == 200, r.status_code
                    except httpx.HTTPError as e:
                        ok, status = False, type(e).__name__
                    with lock:
                        if ok:
                            lat[kind].append(time.perf_counter() - t)
                        else:
                            errors.append(f"{kind}: {status}")

        workers = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        workers.append(threading.Thread(target=sampler))
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        rss_end = rss_kib(proc.pid)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    bound = rss_start * 1.10 + 64 * 1024
    return {
        "seconds": seconds,
        "clients": clients,
        "requests": {k: len(v) for k, v in lat.items()},
        "errors": len(errors),
        "error_samples": errors[:10],
        "p50_s": {k: round(statistics.median(v), 3) if v else None for k, v in lat.items()},
        "p95_s": {k: round(p(v, 0.95), 3) for k, v in lat.items()},
        "rss_start_mib": round(rss_start / 1024, 1),
        "rss_end_mib": round(rss_end / 1024, 1),
        "rss_peak_mib": round(peak[0] / 1024, 1),
        "memory_bound_mib": round(bound / 1024, 1),
        "memory_within_bound": rss_end <= bound,
        "server_alive": alive,
    }


SUITE = [
    "tests/reliability/test_openapi_fuzz.py",
    "tests/reliability/test_faults.py",
    "tests/reliability/test_model_file.py",
    "tests/reliability/test_hostile.py",
    "tests/kb/test_kill.py",
    "tests/tools/test_sandbox.py",
    "tests/tools/test_registry.py",
]


def suite() -> tuple[list[list[Any]], dict[str, Any]]:
    out = Path(tempfile.mkdtemp(prefix="glmkit-reliability-junit-")) / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={out}", *SUITE]
    subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    rows: list[list[Any]] = []
    for case in ET.parse(out).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        outcome = "FAILED" if failed else ("skipped" if skipped else "passed")
        rows.append(
            [
                case.get("classname", "").split(".")[-1],
                case.get("name", "")[:60],
                outcome,
                float(case.get("time", 0)),
            ]
        )
    # schemathesis's own counts, from a separate CLI run on a scripted server (as the test does)
    st: dict[str, Any] = {}
    fuzz = subprocess.run(
        [sys.executable, "-c", FUZZ_COUNTS], cwd=ROOT / "tests", capture_output=True, text=True, timeout=900
    )
    for key, pattern in (("operations", r"Tested: (\d+)"), ("generated", r"(\d+) generated"),
                         ("failures", r"(\d+) found"), ("passed", r"(\d+) passed")):  # fmt: skip
        st[key] = sum(int(x) for x in re.findall(pattern, fuzz.stdout))
    return rows, st


FUZZ_COUNTS = """
import sys, tempfile
from pathlib import Path
sys.path.insert(0, ".")
from reliability.test_openapi_fuzz import run_st, CONTENT_DEPENDENT
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from glmkit.server.app import create_app
from glmkit.settings import Settings
from kb_fakes import HashEmbedder
from servers import SlowEngine, serve
tmp = Path(tempfile.mkdtemp())
model = EngineChatModel(SlowEngine(("你好！",), n_ctx=4096, delay=0.0), ChatGLM3Format(), name="fake")
with serve(create_app(Settings(home=tmp / "h", rate_limit_rpm=1_000_000), chat_model=model, embedder=HashEmbedder())) as url:
    print(run_st(url, tmp, "--exclude-path-regex", CONTENT_DEPENDENT).stdout)
    print(run_st(url, tmp, "--include-path-regex", CONTENT_DEPENDENT, "--exclude-checks", "positive_data_acceptance").stdout)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-load", action="store_true")
    args = ap.parse_args()
    result: dict[str, Any] = {"machine": machine()}
    rows: list[list[Any]] = []
    if not args.skip_load:
        ld = load_run(args.seconds, args.clients, args.threads)
        result["load"] = ld
        total = sum(ld["requests"].values())
        rows.append(
            [
                "load",
                f"{args.clients} clients × {args.seconds:.0f} s, mixed",
                f"{total} ok / {ld['errors']} errors",
                "",
            ]
        )
        for kind in ld["requests"]:
            rows.append(
                [
                    "load",
                    f"{kind}: p50 / p95 (s)",
                    f"{ld['p50_s'][kind]} / {ld['p95_s'][kind]}",
                    f"n={ld['requests'][kind]}",
                ]
            )
        rows.append(["load", "server RSS start → end (peak), MiB",
                     f"{ld['rss_start_mib']} → {ld['rss_end_mib']} ({ld['rss_peak_mib']})",
                     f"bound {ld['memory_bound_mib']}: {'held' if ld['memory_within_bound'] else 'EXCEEDED'}"])  # fmt: skip
    tests, st = suite()
    result["suite"] = [dict(zip(["file", "test", "outcome", "seconds"], r, strict=True)) for r in tests]
    result["schemathesis"] = st
    rows.append(["schemathesis", "operations / generated requests / failures",
                 f"{st['operations']} / {st['generated']} / {st['failures']}", "all checks, all phases"])  # fmt: skip
    for r in tests:
        rows.append([r[0], r[1], r[2], f"{r[3]:.1f} s"])
    print(table(["area", "what", "result", "note"], rows))
    print(f"written: {write_result('reliability', result)}")


if __name__ == "__main__":
    main()
