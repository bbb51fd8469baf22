"""A code interpreter in a separate, locked-down process.

``run_python(code)`` writes the code to ``main.py`` in a fresh scratch folder and starts
``sandbox_boot.py`` (see its docstring for every layer): CPU-time, memory, file-size and open-file limits;
no network (a new network namespace where the kernel allows it, and a seccomp filter that makes
``socket()`` fail everywhere); Landlock so that only the Python runtime and system libraries can be read
and only the scratch folder written; a clean environment. The parent enforces the wall-clock limit by
killing the whole process group, caps captured output, and removes the scratch folder unless asked to
keep it. Off by default: the customer-service bot and the server only offer it when
``Settings.code_interpreter`` is on."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from glmkit.errors import InvalidRequestError

BOOT = Path(__file__).with_name("sandbox_boot.py")
MAX_CODE_CHARS = 100_000
SANDBOX_FAILED = 97


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_bytes: int = 512 * 1024 * 1024
    file_bytes: int = 16 * 1024 * 1024
    output_bytes: int = 64 * 1024


@dataclass
class RunResult:
    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool
    seconds: float
    files: list[str]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def as_dict(self) -> dict[str, object]:
        return self.__dict__ | {"ok": self.ok}


def runtime_paths() -> list[str]:
    """Folders the interpreter may read: the Python installation and the system's shared libraries."""
    python = os.path.realpath(sys.executable)
    paths = {
        sys.base_prefix,
        os.path.realpath(sys.base_prefix),
        sysconfig.get_paths()["stdlib"],
        os.path.dirname(python),
        "/usr/lib",
        "/usr/lib64",
        "/lib",
        "/lib64",
        "/usr/local/lib",
    }
    return sorted(p for p in paths if os.path.isdir(p))


def run_python(code: str, limits: Limits | None = None, *, keep: Path | None = None) -> RunResult:
    """Run ``code`` in the sandbox; see the module docstring. ``keep``: use (and keep) this scratch folder."""
    limits = limits or Limits()
    if not isinstance(code, str) or not code.strip():
        raise InvalidRequestError("no code to run", param="code")
    if len(code) > MAX_CODE_CHARS:
        raise InvalidRequestError(f"the code is over {MAX_CODE_CHARS} characters", param="code")
    scratch = Path(tempfile.mkdtemp(prefix="glmkit-sandbox-")) if keep is None else keep
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "main.py").write_text(code, encoding="utf-8")
    python = os.path.realpath(sys.executable)
    cfg = {
        "scratch": str(scratch.resolve()),
        "python": python,
        "read_only": runtime_paths(),
        "cpu_seconds": limits.cpu_seconds,
        "memory_bytes": limits.memory_bytes,
        "file_bytes": limits.file_bytes,
    }
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [python, "-I", "-S", "-B", str(BOOT), json.dumps(cfg)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=scratch,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        start_new_session=True,  # its own process group: a timeout kills everything it started
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    seconds = time.monotonic() - t0
    if proc.returncode == SANDBOX_FAILED and err.startswith(b"sandbox:"):
        why = err.decode(errors="replace").strip()
        raise InvalidRequestError(f"the code interpreter cannot isolate itself on this system: {why}")
    files = sorted(
        str(p.relative_to(scratch)) for p in scratch.rglob("*") if p.is_file() and p.name != "main.py"
    )
    if keep is None:
        shutil.rmtree(scratch, ignore_errors=True)
    cap = limits.output_bytes

    def text(b: bytes) -> str:
        s = b[:cap].decode("utf-8", errors="replace")
        return s + (f"\n… ({len(b) - cap} more bytes cut)" if len(b) > cap else "")

    code_ = proc.returncode
    if code_ is not None and code_ < 0 and -code_ == signal.SIGXCPU:
        err += b"\nstopped: CPU time limit reached"
    return RunResult(text(out), text(err), None if timed_out else code_, timed_out, round(seconds, 3), files)
