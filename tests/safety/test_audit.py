"""The audit log on its own: writes through the writer thread, rotation at the configured size, pruning,
export round trips (JSON lines and CSV) and the ``glmkit audit`` command."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from glmkit.cli import main
from glmkit.safety.audit import AuditEvent, AuditLog, export, parse_export, parse_time, read_events


def event(i: int, ts: float | None = None, flags: list[dict[str, object]] | None = None) -> AuditEvent:
    return AuditEvent(
        ts=ts if ts is not None else 1_700_000_000.0 + i,
        who=f"key{i % 3}",
        method="POST",
        route="/v1/chat/completions",
        status=200 if i % 5 else 400,
        outcome="ok" if i % 5 else "rejected",
        latency_ms=12.5 + i,
        request_bytes=100 + i,
        response_bytes=2000 + i,
        flags=flags or [],
    )


def test_rows_are_written_and_read_back_in_order(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    try:
        flag = [
            {"stage": "input", "category": "gambling", "action": "flag", "count": 1, "snippet": "去＊＊吧"}
        ]
        for i in range(50):
            log.record(event(i, flags=flag if i == 7 else None))
        assert log.flush()
        rows = log.query()
        assert [r.ts for r in rows] == sorted(r.ts for r in rows) and len(rows) == 50
        assert rows[7].flags == flag and log.query(flagged=True) == [rows[7]]
        assert log.query(since=1_700_000_010, until=1_700_000_020, who="key1") == [
            r for r in rows[10:20] if r.who == "key1"
        ]
        assert [r.ts for r in log.query(limit=3, newest_first=True)] == [
            rows[49].ts,
            rows[48].ts,
            rows[47].ts,
        ]
        db = sqlite3.connect(log.path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()
    finally:
        log.close()


def test_rotation_happens_at_the_configured_size_and_old_files_go(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    log = AuditLog(folder, max_bytes=16 * 1024, keep_files=3, batch=16)
    try:
        snippet = "x" * 200
        for i in range(1000):
            log.record(
                event(i, flags=[{"stage": "input", "category": "c", "action": "flag", "snippet": snippet}])
            )
        assert log.flush(30)
        rotated = log.rotated_files()
        assert log.rotations >= 5  # ~1000 rows of ~300 bytes in 16 KiB files
        assert len(rotated) == 3  # keep_files: the oldest went
        for p in rotated:
            size = p.stat().st_size
            assert 16 * 1024 <= size <= 16 * 1024 + 16 * 4096, (
                size
            )  # rotated once at the size (one batch over)
        assert log.size() < 16 * 1024 + 16 * 4096
        kept = log.query()
        assert [r.ts for r in kept] == sorted(r.ts for r in kept)  # across files, oldest first
        assert kept[-1].ts == event(999).ts and len(kept) < 1000
    finally:
        log.close()
    # age: rotated files older than keep_days are deleted too
    old = rotated[0]
    os.utime(old, (time.time() - 10 * 86400, time.time() - 10 * 86400))
    log2 = AuditLog(folder, max_bytes=16 * 1024, keep_files=10, keep_days=5)
    try:
        assert old in log2.prune() and not old.exists()
    finally:
        log2.close()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_round_trips(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(tmp_path / "audit")
    try:
        flags = [
            {"stage": "output", "category": "profanity", "action": "mask", "count": 2, "snippet": "你，＊＊"}
        ]
        for i in range(20):
            log.record(event(i, flags=flags if i % 4 == 0 else None))
        log.flush()
        rows = log.query()
    finally:
        log.close()
    buf = io.StringIO()
    assert export(rows, buf, fmt) == 20  # type: ignore[arg-type]
    assert parse_export(buf.getvalue(), fmt) == rows  # type: ignore[arg-type]
    # the command line writes the same thing, and --since filters
    monkeypatch.setenv("GLMKIT_HOME", str(tmp_path))
    out = tmp_path / f"export.{fmt}"
    assert main(["audit", "export", "--format", fmt, "--out", str(out), "--since", "1700000010"]) == 0
    assert parse_export(out.read_text("utf-8"), fmt) == [r for r in rows if r.ts >= 1_700_000_010]  # type: ignore[arg-type]


def test_cli_says_when_there_is_no_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GLMKIT_HOME", str(tmp_path))
    assert main(["audit", "recent"]) == 1
    assert "no audit log" in capsys.readouterr().err


def test_parse_time_forms() -> None:
    now = 1_700_000_000.0
    assert parse_time("7d", now=now) == now - 7 * 86400
    assert parse_time("30m", now=now) == now - 1800
    assert parse_time("1700000000") == now
    assert parse_time("2023-11-14T22:13:20") == now
    assert parse_time("2023-11-14T22:13:20+00:00") == now
    with pytest.raises(Exception, match="cannot read the time"):
        parse_time("last tuesday")


def test_reading_a_rotated_file_needs_no_write_access(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit")
    try:
        log.record(event(1))
        log.flush()
        rotated = log.rotate()  # from the test: the writer is idle once flushed
    finally:
        log.close()
    os.chmod(rotated, 0o444)
    rows = list(read_events([rotated]))
    assert [json.loads(json.dumps(r.as_dict()))["ts"] for r in rows] == [event(1).ts]
