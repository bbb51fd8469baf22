"""The code interpreter's isolation, tried for real: files, network, CPU, memory, wall clock."""

from __future__ import annotations

from pathlib import Path

from glmkit.tools.registry import ToolRegistry, enable_code_interpreter
from glmkit.tools.sandbox import Limits, run_python

FAST = Limits(cpu_seconds=2, wall_seconds=4.0, memory_bytes=256 * 1024 * 1024)


def test_runs_code_and_writes_only_its_scratch_folder(tmp_path: Path) -> None:
    r = run_python("open('out.txt', 'w').write('hi'); print(sum(range(10)))", FAST, keep=tmp_path / "s")
    assert r.ok and r.stdout == "45\n" and r.files == ["out.txt"]
    assert (tmp_path / "s" / "out.txt").read_text() == "hi"


def test_cannot_read_or_write_outside_its_scratch_folder(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    code = f"""
import os
for p in [{str(secret)!r}, '/etc/passwd', {__file__!r}]:
    try:
        open(p).read(); print('READ', p)
    except OSError as e:
        print('denied', type(e).__name__)
try:
    open({str(tmp_path / 'planted.txt')!r}, 'w').write('x'); print('WROTE')
except OSError as e:
    print('denied', type(e).__name__)
try:
    os.listdir({str(tmp_path)!r}); print('LISTED')
except OSError as e:
    print('denied', type(e).__name__)
"""
    r = run_python(code, FAST)
    assert r.ok, r.stderr
    assert "READ" not in r.stdout and "WROTE" not in r.stdout and "LISTED" not in r.stdout
    assert r.stdout.count("denied PermissionError") == 5
    assert not (tmp_path / "planted.txt").exists()


def test_cannot_open_a_socket() -> None:
    code = """
import socket
for fam, kind in [(socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET6, socket.SOCK_DGRAM), (socket.AF_UNIX, socket.SOCK_STREAM)]:
    try:
        socket.socket(fam, kind); print('OPENED', fam)
    except OSError as e:
        print('denied', e.errno)
"""
    r = run_python(code, FAST)
    assert r.ok and "OPENED" not in r.stdout and r.stdout.count("denied 1") == 3  # EPERM


def test_cpu_memory_and_wall_clock_limits() -> None:
    spin = run_python("while True: pass", FAST)
    assert not spin.ok and "CPU time limit" in spin.stderr
    hog = run_python("x = bytearray(1024 ** 3)", FAST)
    assert not hog.ok and "MemoryError" in hog.stderr
    sleeper = run_python("import time; time.sleep(30)", Limits(wall_seconds=1.0))
    assert sleeper.timed_out and sleeper.exit_code is None and sleeper.seconds < 5
    child = run_python(
        "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(30)'])",
        Limits(wall_seconds=1.0),
    )
    assert child.timed_out and child.seconds < 5  # the whole process group is killed


def test_output_is_capped_and_the_tool_validates_its_arguments() -> None:
    r = run_python("print('x' * 200000)", Limits(output_bytes=1000))
    assert len(r.stdout) < 1100 and "more bytes cut" in r.stdout
    reg = ToolRegistry()
    enable_code_interpreter(reg, FAST)
    out = reg.call("code_interpreter", {"code": "print(6 * 7)"})
    assert out["ok"] and out["stdout"] == "42\n"
    import pytest

    from glmkit.tools.schema import ToolArgumentError

    with pytest.raises(ToolArgumentError, match="code must be string"):
        reg.call("code_interpreter", {"code": 42})
    with pytest.raises(ToolArgumentError, match="not a known argument"):
        reg.call("code_interpreter", {"code": "1", "shell": "ls"})
