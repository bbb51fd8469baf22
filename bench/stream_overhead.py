"""The server's own CPU per streamed token: glmkit's Python around the engine, measured without the engine.

On 2 cores llama.cpp's decode uses both; every millisecond of Python the server spends per token is taken
from it (see docs/server.md, "Measured against llama.cpp's own server"). Wall-clock throughput on this
machine drifts by ±15%, which hides a change of a few percent; CPU time does not drift that way. So this
runs the real app (uvicorn, routes, middleware, the content filter, SSE) in this process over a *paced*
engine: one worker thread that, like the llama.cpp engine, emits one token to every active stream per
step and sleeps between steps (no CPU). 8 clients in a separate process stream chat completions; the
server process's CPU time (all threads) divided by the tokens streamed is the cost per token. The
baseline in the same run is the same process idle for the same wall time, subtracted.

    .venv/bin/python bench/stream_overhead.py          # table, JSON in bench/results/stream_overhead.json

Rows: the content filter at its default (``flag``, every shipped list) and off; ``per step`` is what 8
streams cost the server per engine step, next to the ~100 ms a real 8-sequence decode step takes here.
"""

from __future__ import annotations

import argparse
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import machine, table, write_result  # noqa: E402
from fakes import CharTokenizer  # noqa: E402
from glmkit.runtime.chat import EngineChatModel  # noqa: E402
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format  # noqa: E402
from glmkit.runtime.protocol import EngineInfo  # noqa: E402
from glmkit.server.app import create_app  # noqa: E402
from glmkit.settings import Settings  # noqa: E402
from glmkit.types import CancelToken, ResolvedSampling  # noqa: E402
from servers import serve  # noqa: E402

TEXT = "\n" + (
    "春天来了，公园里的花都开了。孩子们在草地上放风筝，老人们在树下下棋。"
    "远处的山上还有一点残雪，河水慢慢地流着，映着蓝天和白云。"
) * 4

CLIENT = r"""
import json, sys, threading, httpx
url, clients, rounds, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
counts = []
def one(i):
    n = 0
    with httpx.Client(timeout=120) as c:
        for r in range(rounds):
            body = {"model": "paced", "stream": True, "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": f"写一段话 {i} {r}"}]}
            with c.stream("POST", url + "/v1/chat/completions", json=body) as resp:
                resp.raise_for_status()
                for line in resp.iter_lines():
                    if line.startswith("data: {"):
                        ch = json.loads(line[6:])["choices"]
                        n += bool(ch and ch[0]["delta"].get("content"))
    counts.append(n)
ts = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(counts))
"""


class PacedEngine:
    """One worker thread emits a token to every active request per step, then sleeps ``step_s``."""

    def __init__(self, step_s: float) -> None:
        self.tokenizer = CharTokenizer()
        self.info = EngineInfo(name="paced", backend="fake", n_ctx=4096)
        self.step_s = step_s
        self.ids = self.tokenizer.encode(TEXT)
        self._active: list[tuple[queue.Queue[Any], list[int], CancelToken | None]] = []
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop:
            time.sleep(self.step_s)
            with self._lock:
                live = []
                for q, left, cancel in self._active:
                    if not left or (cancel is not None and cancel.cancelled):
                        q.put(None)
                        continue
                    q.put(left.pop(0))
                    live.append((q, left, cancel))
                self._active = live

    def generate(
        self,
        prompt_ids: Sequence[int],
        sampling: ResolvedSampling,
        stop_ids: frozenset[int],
        cancel: CancelToken | None = None,
    ) -> Iterator[int]:
        q: queue.Queue[Any] = queue.Queue()
        with self._lock:
            self._active.append((q, self.ids[: sampling.max_tokens], cancel))
        while True:
            tid = q.get()
            if tid is None:
                return
            yield tid

    def stats(self) -> dict[str, int]:
        return {"active": len(self._active), "waiting": 0, "slots": 8}

    def close(self) -> None:
        self._stop = True


def cpu() -> float:
    return time.process_time()


def run(filter_mode: str, clients: int, rounds: int, max_tokens: int, step_s: float, home: Path) -> dict[str, Any]:
    engine = PacedEngine(step_s)
    model = EngineChatModel(engine, ChatGLM3Format(), name="paced")
    s = Settings(home=home, rate_limit_rpm=0, content_filter=filter_mode)  # type: ignore[call-arg]
    with serve(create_app(s, chat_model=model)) as url:
        t0, c0 = time.monotonic(), cpu()
        out = subprocess.run(
            [sys.executable, "-c", CLIENT, url, str(clients), str(rounds), str(max_tokens)],
            capture_output=True, text=True, check=True,
        )
        wall, used = time.monotonic() - t0, cpu() - c0
    engine.close()
    # the same process idle for the same time: what the paced worker and uvicorn cost doing nothing
    c1 = cpu()
    time.sleep(min(wall, 5.0))
    idle = (cpu() - c1) * wall / min(wall, 5.0)
    tokens = int(out.stdout.strip())
    per_token_us = (used - idle) / tokens * 1e6
    return {
        "filter": filter_mode,
        "clients": clients,
        "tokens": tokens,
        "wall_s": round(wall, 2),
        "cpu_s": round(used, 3),
        "idle_cpu_s": round(idle, 3),
        "cpu_per_token_us": round(per_token_us, 1),
        "cpu_per_step_ms": round(per_token_us * clients / 1000, 2),
        "cpu_share_pct": round((used - idle) / wall * 100, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--step-ms", type=float, default=100.0, help="engine step (a real 8-way step: ~100 ms)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import tempfile

    rows: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        for mode in (["flag", "off"] if rep % 2 == 0 else ["off", "flag"]):
            with tempfile.TemporaryDirectory() as home:
                r = run(mode, args.clients, args.rounds, args.max_tokens, args.step_ms / 1000, Path(home))
            r["repeat"] = rep
            rows.append(r)
    cols = ["filter", "clients", "tokens", "wall_s", "cpu_per_token_us", "cpu_per_step_ms", "cpu_share_pct"]
    print(table(cols, [[r[c] for c in cols] for r in rows]))
    write_result("stream_overhead", {"machine": machine(), "args": vars(args), "runs": rows})


if __name__ == "__main__":
    main()
