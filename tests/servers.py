"""Helpers for the server tests: real uvicorn on a free loopback port in a thread, and a slow scripted engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from fakes import ScriptedEngine
from peers import free_port


@contextmanager
def serve(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=10)
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not t.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=30)


class SlowEngine(ScriptedEngine):
    """A scripted engine that takes ``delay`` seconds per token and reports ``stats`` like the real one."""

    def __init__(self, script: Any, n_ctx: int, delay: float) -> None:
        super().__init__(script, n_ctx=n_ctx)
        self.delay = delay
        self.waiting = 0
        self.active = 0

    def stats(self) -> dict[str, int]:
        return {"active": self.active, "waiting": self.waiting, "slots": 1}

    def generate(self, prompt_ids: Any, sampling: Any, stop_ids: Any, cancel: Any = None) -> Iterator[int]:
        self.active += 1
        try:
            for tid in super().generate(prompt_ids, sampling, stop_ids, cancel):
                time.sleep(self.delay)
                yield tid
        finally:
            self.active -= 1
