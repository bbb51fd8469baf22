"""Faults: SIGKILL during session writes. Whatever was committed before the kill is there after a restart,
the database is intact, and no hand-off is half-written (queue entry, session state and message go
together). The knowledge base's kill test is tests/kb/test_kill.py; the model file's, test_model_file.py."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from glmkit.apps.sessions import SessionStore

WRITER = Path(__file__).with_name("session_writer.py")
BOT = "name: shop\ndefault_route: {action: chat}\nhandoff_words: [转人工]\n"


def start(tmp: Path, *extra: str) -> subprocess.Popen[str]:
    (tmp / "bot.yaml").write_text(BOT, "utf-8")
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(tmp / "s.sqlite3"), str(tmp / "bot.yaml"), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def consistent(db: Path) -> list[str]:
    """Every way the stored state is inconsistent (empty: fine)."""
    con = sqlite3.connect(db)
    problems = []
    if con.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
        problems.append("integrity_check failed")
    for sid, state in con.execute("SELECT id, state FROM sessions"):
        h = con.execute("SELECT status FROM handoffs WHERE session = ?", (sid,)).fetchone()
        last = con.execute(
            "SELECT role, trace FROM messages WHERE session = ? ORDER BY ts DESC LIMIT 1", (sid,)
        ).fetchone()
        if (state == "waiting") != (h is not None and h[0] == "waiting"):
            problems.append(f"{sid}: session state {state!r} but hand-off row {h}")
        if h is not None and not (last and last[0] == "assistant" and '"handoff"' in (last[1] or "")):
            problems.append(f"{sid}: a hand-off without its message")
    con.close()
    return problems


def test_sigkill_during_session_writes_loses_nothing_committed(tmp_path: Path) -> None:
    rng = random.Random(7)
    committed: dict[str, int] = {}
    for _ in range(3):  # kill at three random moments, restarting on the same store each time
        p = start(tmp_path)
        deadline = time.monotonic() + 0.4 + rng.random()
        assert p.stdout is not None
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if line.startswith("committed "):
                _, sid, n = line.split()
                committed[sid] = int(n)
        p.send_signal(signal.SIGKILL)
        rest, _ = p.communicate(timeout=30)
        for line in rest.splitlines():
            if line.startswith("committed "):
                _, sid, n = line.split()
                committed[sid] = int(n)
        assert p.returncode == -signal.SIGKILL
        assert consistent(tmp_path / "s.sqlite3") == []
    assert len(committed) >= 3
    store = SessionStore(tmp_path / "s.sqlite3")
    for sid, n in committed.items():
        assert len(store.messages(sid)) == n  # every acknowledged turn is there, in full
    store.close()


def test_a_crash_between_handoff_writes_leaves_no_half_handoff(tmp_path: Path) -> None:
    p = start(tmp_path, "crash-after-handoff-insert")
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 9, err  # it died right after writing the hand-off row
    assert consistent(tmp_path / "s.sqlite3") == []
    con = sqlite3.connect(tmp_path / "s.sqlite3")
    assert con.execute("SELECT count(*) FROM handoffs").fetchone()[0] == 0  # rolled back with the rest
    # the two turns before it stand, and the user's "转人工" (received before the hand-off began)
    assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == 5
    con.close()
