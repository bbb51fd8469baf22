"""``glmkit summarize`` on a long document as a user runs it: a real process against an OpenAI-compatible
peer, stopped with Ctrl-C and killed with SIGKILL mid-way, then resumed with --resume: only the calls
that had not finished are asked again, and the summary is the one an unbroken run writes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openai_peer import Peer
from servers import serve

SECTION = (
    "长城是中国古代的军事防御工程。它东起山海关，西至嘉峪关。长城修建的历史可以追溯到春秋战国时期。"
    "秦始皇统一中国后，把各国长城连接起来。明朝对长城进行了大规模的重修。今天的长城是世界文化遗产。"
)


def reply_for(body: dict[str, Any]) -> str:
    """A reply that depends on what was asked, so that no two calls of the tree are alike."""
    asked = json.dumps(body["messages"], ensure_ascii=False).encode()
    return f"要点{int(hashlib.sha256(asked).hexdigest()[:6], 16) % 9973}。"


@pytest.fixture
def peer() -> Iterator[tuple[str, Peer]]:
    p = Peer(reply_for, delay=0.15)  # bodies are kept on arrival: a killed client's calls count there
    with serve(p.app) as url:
        yield f"openai:{url}/v1#peer", p


def summarize(home: Path, doc: Path, model: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "GLMKIT_HOME": str(home)}
    cmd = [sys.executable, "-m", "glmkit", "summarize", str(doc), "--model", model, "--json"]
    cmd += ["--concurrency", "2", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_after(proc: subprocess.Popen[str], p: Peer, calls: int, sig: int) -> tuple[int, str]:
    deadline = time.monotonic() + 60
    while len(p.bodies) < calls:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the summary never reached its calls"
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    time.sleep(0.5)  # requests already on the wire reach the peer before the next phase counts
    return proc.returncode, err


def test_stopped_or_killed_summaries_resume_from_the_finished_calls(
    peer: tuple[str, Peer], tmp_path: Path
) -> None:
    model, p = peer
    doc = tmp_path / "long.txt"
    doc.write_text("".join(f"第{i}节。{SECTION}" for i in range(150)), encoding="utf-8")
    home = tmp_path / "home"
    checkpoints = home / "summaries" / "checkpoints"

    # an unbroken run: how many calls the summary takes, and what it says
    whole = summarize(home, doc, model)
    out, err = whole.communicate(timeout=120)
    assert whole.returncode == 0, err
    want = json.loads(out)
    total = len(p.bodies)
    assert want["calls"] == total and want["pieces"] >= 6 and want["reused"] == 0
    assert not list(checkpoints.glob("*.jsonl"))  # a finished summary leaves no checkpoint

    # Ctrl-C: a clean stop that says how to go on
    p.bodies.clear()
    rc, err = stop_after(summarize(home, doc, model), p, 6, signal.SIGINT)
    assert rc == 130 and "--resume" in err and "Traceback" not in err, err
    (ck,) = checkpoints.glob("*.jsonl")
    kept = sum(1 for _ in ck.open(encoding="utf-8"))
    assert kept >= 3

    # then SIGKILL in the middle of the resumed run: nothing of the finished calls is lost
    p.bodies.clear()
    rc, _ = stop_after(summarize(home, doc, model, "--resume"), p, 5, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    again = sum(1 for line in ck.open(encoding="utf-8") if line.strip())
    assert again >= kept + 2

    # and the last resume asks only for what had not finished, and writes the same summary
    p.bodies.clear()
    last = summarize(home, doc, model, "--resume")
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, err
    got = json.loads(out)
    assert got["summary"] == want["summary"]
    assert got["reused"] >= again - 1 and len(p.bodies) == total - got["reused"]
    assert not ck.exists()

    # without --resume a new run starts from nothing
    p.bodies.clear()
    fresh = summarize(home, doc, model)
    out, _ = fresh.communicate(timeout=120)
    assert json.loads(out)["reused"] == 0 and len(p.bodies) == total


def test_the_progress_bar_tells_the_time_left() -> None:
    from glmkit.cli.progress import eta

    assert eta(5, 10, since=0.0, now=50.0) == "ETA 50s"
    assert eta(1, 100, since=0.0, now=60.0) == "ETA 99m00s"
    assert eta(0, 10, since=0.0, now=5.0) == "" and eta(10, 10, since=0.0, now=5.0) == ""
