"""Real peers for tests: llama-cpp-python's own OpenAI-compatible server on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

# llama.cpp's extra CPU buffers crash multi-token batches on AMX VMs; start the peer with glmkit's choice.
LAUNCH = """
import sys, runpy
import llama_cpp.llama_cpp as low
from glmkit.runtime.backends.llamacpp_lib import default_extra_buffers
orig = low.llama_model_default_params
def params():
    p = orig(); p.use_extra_bufts = default_extra_buffers(); return p
low.llama_model_default_params = params
sys.argv = ["llama_cpp.server"] + sys.argv[1:]
runpy.run_module("llama_cpp.server", run_name="__main__")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(proc: subprocess.Popen[bytes], base: str, timeout: float, what: str, log: Any = None) -> None:
    """Poll ``base``/models until the server answers; a process that exits fails with its log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = ""
            if log is not None:
                log.seek(0)
                tail = ": " + log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{what} exited during start-up{tail}")
        try:
            if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start in {timeout:.0f} s")
        time.sleep(0.3)


@contextmanager
def llama_cpp_server(model_path: str, *extra: str, timeout: float = 60.0) -> Iterator[str]:
    port = free_port()
    cmd = [
        sys.executable,
        "-c",
        LAUNCH,
        "--model",
        model_path,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        "1",
        "--n_ctx",
        "2048",
        *extra,
    ]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally; a pipe would fill with llama.cpp's log and block the server
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env={**os.environ})
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(proc, base, timeout, "llama_cpp.server", log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
