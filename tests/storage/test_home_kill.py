"""A ``glmkit home encrypt`` or ``rekey`` killed (SIGKILL, a real subprocess) at many points leaves the home
wholly in the old form or wholly in the new one once the next command opens it, with every row intact."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from glmkit.errors import EncryptionKeyError
from glmkit.settings import Settings
from glmkit.storage.crypto import StoreKey, connect, file_form
from glmkit.storage.home import home_key, read_marker, rekey_home

SENTENCE = "我的快递三天了还没有到，请帮我查一下订单号。"
OLD = "old-" + "0123456789abcdef" * 4
NEW = "new-" + "fedcba9876543210" * 4
SRC = Path(__file__).resolve().parents[2] / "src"
DBS = ["kb/kb.sqlite3", "kb/review.sqlite3", "service/sessions.sqlite3", "audit/audit.sqlite3"]


def make_home(home: Path) -> None:
    for i, name in enumerate(DBS):
        p = home / name
        p.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(p)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT NOT NULL)")
        db.executemany("INSERT INTO t (x) VALUES (?)", [(f"{SENTENCE}{i}-{j}",) for j in range(8000)])
        db.commit()
        db.close()


def fingerprint(home: Path, key: StoreKey | None) -> dict[str, Any]:
    out = {}
    for name in DBS:
        db = connect(home / name, key)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            out[name] = db.execute("SELECT count(*), sum(length(x)), max(x) FROM t").fetchone()
        finally:
            db.close()
    return out


def run_and_kill(
    home: Path, args: list[str], env: dict[str, str], after_lines: int | None, delay: float
) -> str:
    """Start ``glmkit home ARGS`` and SIGKILL it after it printed ``after_lines`` progress lines (then
    ``delay`` seconds), or ``delay`` seconds after start; returns what it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "glmkit", "home", *args],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "GLMKIT_HOME": str(home)} | env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    if after_lines is not None:
        while len(seen) < after_lines:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return "".join(seen)


def settle(home: Path, old: str | None, new: str) -> str:
    """Open the home as the next command would (finishing or rolling back), and say which form it is in."""
    try:
        home_key(Settings(home=home, encryption_key=new))
        form = "new"
    except EncryptionKeyError as e:
        assert "run `glmkit home encrypt`" in e.message or "wrong key" in e.message, e.message
        home_key(Settings(home=home, encryption_key=old))  # the old form opens as before
        form = "old"
    assert not list(home.rglob("*.glmkit-new*")) and not (home / "encryption.journal.json").exists()
    return form


# (progress lines to wait for, then seconds): before any export, after each of the 4 exports, after the
# commit and after each rename; then kills at random times
POINTS: list[tuple[int | None, float]] = [
    (None, 0.0),
    (None, 0.4),
    *[(n, 0.0) for n in range(1, 10)],
    (4, 0.002),
]


@pytest.mark.parametrize("op", ["encrypt", "rekey"])
def test_a_killed_conversion_leaves_the_old_or_the_new_form_intact(tmp_path: Path, op: str) -> None:
    template = tmp_path / "template"
    make_home(template)
    old_key = None
    if op == "rekey":
        old_key = StoreKey.from_text(OLD)
        from glmkit.storage.home import encrypt_home

        encrypt_home(Settings(home=template, encryption_key=OLD))
    expected = fingerprint(template, old_key)
    rng = random.Random(16)
    points = POINTS + [(None, rng.uniform(0.05, 0.6)) for _ in range(4)]
    forms: list[str] = []
    states: list[str | None] = []
    for i, (lines, delay) in enumerate(points):
        home = tmp_path / f"run{i}"
        shutil.copytree(template, home)
        if op == "encrypt":
            printed = run_and_kill(home, ["encrypt"], {"GLMKIT_ENCRYPTION_KEY": NEW}, lines, delay)
        else:
            env = {"GLMKIT_ENCRYPTION_KEY": OLD, "GLMKIT_NEW_ENCRYPTION_KEY": NEW}
            printed = run_and_kill(home, ["rekey"], env, lines, delay)
        journal = home / "encryption.journal.json"
        states.append(json.loads(journal.read_text())["state"] if journal.exists() else None)
        form = settle(home, OLD if op == "rekey" else None, NEW)
        forms.append(form)
        key = StoreKey.from_text(NEW) if form == "new" else old_key
        assert fingerprint(home, key) == expected, (i, lines, delay, printed)
        want = "encrypted" if form == "new" or op == "rekey" else "plain"
        assert {file_form(home / n) for n in DBS} == {want}
        marker = read_marker(home)
        assert (marker or {}).get("key_id") == (key.id if key else None)
        if form == "old":  # and the conversion, run again, completes
            if op == "encrypt":
                from glmkit.storage.home import encrypt_home

                encrypt_home(Settings(home=home, encryption_key=NEW))
            else:
                rekey_home(Settings(home=home, encryption_key=OLD), NEW)
            assert fingerprint(home, StoreKey.from_text(NEW)) == expected
        shutil.rmtree(home)
    assert forms[0] == "old" and "new" in forms  # the kills did land on both sides of the commit
    # and some mid-way: new files written beside the old (rolled back), or renames half done (finished)
    assert "converting" in states and "commit" in states, states
    assert not os.environ.get("GLMKIT_ENCRYPTION_KEY")
