"""SIGKILL in the middle of ingestion leaves every document whole or absent, and what was stored before
intact; running the same command again completes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glmkit.kb.stores import open_store


def _docs(d: Path, n: int) -> None:
    d.mkdir()
    for i in range(n):
        body = "".join(f"第{i}号文档的第{j}句话，讲述退款、发票和配送的规则。" for j in range(50))
        (d / f"doc{i:02d}.txt").write_text(body, "utf-8")


def _glmkit(home: Path, store: str | None, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GLMKIT_HOME": str(home)}
    if store:
        env["GLMKIT_KB_STORE"] = store
    return subprocess.Popen(
        [sys.executable, "-m", "glmkit", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _check_whole(store_url: str | None, home: Path) -> dict[str, int]:
    s = open_store(store_url, home)
    try:
        counts = {}
        for d in s.list_documents("k"):
            ids = [f"{d.id}-{i}" for i in range(d.n_chunks)]
            assert len(s.chunks(ids)) == d.n_chunks, f"{d.source} is half-stored"
            assert not s.chunks([f"{d.id}-{d.n_chunks}"])
            counts[d.source] = d.n_chunks
        return counts
    finally:
        s.close()


@pytest.mark.parametrize("kind", ["sqlite", "pgvector"])
def test_sigkill_mid_ingestion(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    store_url = None
    if kind == "pgvector":
        from pg import fresh_database

        store_url = fresh_database(request.getfixturevalue("pg_uri"), "killtest")
    home = tmp_path / "home"
    _docs(tmp_path / "first", 2)
    _docs(tmp_path / "docs", 12)
    assert _glmkit(home, store_url, "kb", "create", "k").wait(60) == 0
    assert _glmkit(home, store_url, "kb", "add", "k", str(tmp_path / "first")).wait(120) == 0
    before = _check_whole(store_url, home)
    assert len(before) == 2

    p = _glmkit(home, store_url, "kb", "add", "k", str(tmp_path / "docs"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill once some, not all, of the batch is in
        time.sleep(0.1)
        n = len(_check_whole(store_url, home)) - 2
        if n >= 2:
            break
    p.send_signal(signal.SIGKILL)
    p.wait(10)
    mid = _check_whole(store_url, home)
    assert 2 < len(mid) < 14, f"the kill should land mid-batch, stored {len(mid) - 2} of 12"
    assert all(mid[k] == v for k, v in before.items())  # earlier documents untouched

    again = _glmkit(home, store_url, "kb", "add", "k", str(tmp_path / "docs"), "--json")
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0
    import json

    statuses = [f["status"] for f in json.loads(out)["files"]]
    assert statuses.count("unchanged") >= len(mid) - 2 and "failed" not in statuses
    assert len(_check_whole(store_url, home)) == 14
