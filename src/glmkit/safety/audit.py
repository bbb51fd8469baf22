"""The audit log: one row per API request — who, what route, when, sizes, outcome, latency and the content
filter's events — in SQLite under ``$GLMKIT_HOME/audit/``. Bodies are never stored: only their sizes, and
for filter events a short snippet with the hit replaced by ＊ and PII masked.

Writing never holds up a request: ``record`` puts the row on a queue and one writer thread inserts
batches in short transactions (WAL). When ``audit.sqlite3`` reaches ``max_bytes`` it is renamed to
``audit-YYYYMMDDTHHMMSSZ.sqlite3`` and a new one is started; the newest ``keep_files`` rotated files are
kept, and any older than ``keep_days`` are deleted. Reading (``query``, ``export``) goes through the
rotated files and the current one, oldest first.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from glmkit.errors import InvalidRequestError
from glmkit.storage.crypto import DatabaseError, Error, StoreKey, connect

log = logging.getLogger(__name__)

Outcome = Literal["ok", "rejected", "blocked", "error", "cancelled"]
FIELDS = (
    "ts",
    "who",
    "method",
    "route",
    "status",
    "outcome",
    "latency_ms",
    "request_bytes",
    "response_bytes",
    "flags",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, ts REAL NOT NULL, who TEXT NOT NULL,
    method TEXT NOT NULL, route TEXT NOT NULL, status INTEGER NOT NULL, outcome TEXT NOT NULL,
    latency_ms REAL NOT NULL, request_bytes INTEGER NOT NULL, response_bytes INTEGER NOT NULL, flags TEXT);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
"""
CURRENT = "audit.sqlite3"
_ROTATED = re.compile(r"^audit-\d{8}T\d{6}(?:\.\d+)?Z\.sqlite3$")
MAX_PENDING = 50_000  # rows waiting for the writer; past this new rows are dropped (and counted)


@dataclass
class AuditEvent:
    ts: float
    who: str
    method: str
    route: str
    status: int
    outcome: Outcome
    latency_ms: float
    request_bytes: int
    response_bytes: int
    flags: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def row(self) -> tuple[Any, ...]:
        flags = json.dumps(self.flags, ensure_ascii=False) if self.flags else None
        return (
            self.ts,
            self.who,
            self.method,
            self.route,
            self.status,
            self.outcome,
            round(self.latency_ms, 3),
            self.request_bytes,
            self.response_bytes,
            flags,
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> AuditEvent:
        ts, who, method, route, status, outcome, latency, req, resp, flags = row
        return cls(
            ts, who, method, route, status, outcome, latency, req, resp, json.loads(flags) if flags else []
        )


def outcome_of(status: int, flags: Sequence[dict[str, Any]], completed: bool) -> Outcome:
    if any(f.get("action") == "block" for f in flags):
        return "blocked"
    if not completed:
        return "cancelled"
    if status >= 500:
        return "error"
    if status >= 400:
        return "rejected"
    return "ok"


class AuditLog:
    """The audit database of one server: ``record`` (never blocks), ``flush``, ``query``, ``export``."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int = 16 * 1024 * 1024,
        keep_files: int = 10,
        keep_days: float = 90.0,
        batch: int = 256,
        key: StoreKey | None = None,
    ) -> None:
        self.folder = folder
        self.key = key
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        self.keep_days = keep_days
        self.batch = batch
        self.dropped = 0
        self.rotations = 0
        folder.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[AuditEvent | None] = queue.Queue()
        self._db = self._open()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="glmkit-audit", daemon=True)
        self._thread.start()

    @property
    def path(self) -> Path:
        return self.folder / CURRENT

    def _open(self) -> sqlite3.Connection:
        db = connect(self.path, self.key, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    # -- writing -------------------------------------------------------------------------------------------
    def record(self, event: AuditEvent) -> None:
        """Queue one row for the writer thread (dropped, and counted, if the writer is far behind)."""
        if self._closed:
            return
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            return
        self._queue.put_nowait(event)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            items = [first]
            while len(items) < self.batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [e.row() for e in items if e is not None]
            try:
                if rows:
                    self._write(rows)
            except Error as e:  # a full disk must not take the server down; say so in the log
                log.warning("audit log: %d rows not written: %s", len(rows), e)
            finally:
                for _ in items:
                    self._queue.task_done()
            if None in items:
                return

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT INTO events (ts, who, method, route, status, outcome, latency_ms, request_bytes,"
                " response_bytes, flags) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if self.size() >= self.max_bytes:
            self.rotate()

    def size(self) -> int:
        """Bytes the current database holds (pages in use, the write-ahead log included)."""
        (pages,) = self._db.execute("PRAGMA page_count").fetchone()
        (page_size,) = self._db.execute("PRAGMA page_size").fetchone()
        return int(pages) * int(page_size)

    def rotate(self) -> Path:
        """Close the current file under a dated name and start a new one (writer thread only, or tests)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        now = dt.datetime.now(dt.UTC)
        target = self.folder / f"audit-{now:%Y%m%dT%H%M%S}.{now.microsecond:06d}Z.sqlite3"
        os.replace(self.path, target)
        for suffix in ("-wal", "-shm"):
            leftover = self.folder / (CURRENT + suffix)
            if leftover.exists():
                leftover.unlink()
        self._db = self._open()
        self.rotations += 1
        self.prune()
        return target

    def prune(self) -> list[Path]:
        """Delete rotated files beyond ``keep_files`` (oldest first) or older than ``keep_days``."""
        rotated = self.rotated_files()
        cutoff = time.time() - self.keep_days * 86400
        doomed = rotated[: max(0, len(rotated) - self.keep_files)]
        doomed += [p for p in rotated[len(doomed) :] if p.stat().st_mtime < cutoff]
        for p in doomed:
            p.unlink(missing_ok=True)
        return doomed

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued row is written (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._db.close()

    # -- reading -------------------------------------------------------------------------------------------
    def rotated_files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if _ROTATED.match(p.name))

    def files(self) -> list[Path]:
        """Rotated files, oldest first, then the current one."""
        return [*self.rotated_files(), self.path]

    def query(
        self,
        since: float | None = None,
        until: float | None = None,
        *,
        flagged: bool = False,
        who: str | None = None,
        route: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEvent]:
        return list(
            read_events(
                self.files(),
                since,
                until,
                flagged=flagged,
                who=who,
                route=route,
                limit=limit,
                newest_first=newest_first,
                key=self.key,
            )
        )


def read_events(
    files: Sequence[Path],
    since: float | None = None,
    until: float | None = None,
    *,
    flagged: bool = False,
    who: str | None = None,
    route: str | None = None,
    limit: int | None = None,
    newest_first: bool = False,
    key: StoreKey | None = None,
) -> Iterator[AuditEvent]:
    """Events from audit files (given oldest first), filtered, in time order (or newest first)."""
    where: list[str] = ["1=1"]
    args: list[Any] = []
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    if until is not None:
        where.append("ts < ?")
        args.append(until)
    if flagged:
        where.append("flags IS NOT NULL")
    if who is not None:
        where.append("who = ?")
        args.append(who)
    if route is not None:
        where.append("route = ?")
        args.append(route)
    order = "DESC" if newest_first else "ASC"
    sql = (
        f"SELECT {', '.join(FIELDS)} FROM events WHERE {' AND '.join(where)} ORDER BY ts {order}, id {order}"
    )
    left = limit
    for path in reversed(files) if newest_first else files:
        if left is not None and left <= 0:
            return
        if not path.exists():
            continue
        try:
            db = connect(path, key, timeout=10, readonly=True)
        except DatabaseError as e:
            raise InvalidRequestError(f"{path}: not a readable audit database ({e})") from None
        try:
            rows = db.execute(
                sql + (" LIMIT ?" if left is not None else ""), [*args, *([left] if left else [])]
            )
            for row in rows:
                yield AuditEvent.from_row(row)
                if left is not None:
                    left -= 1
        except DatabaseError as e:
            raise InvalidRequestError(f"{path}: not a readable audit database ({e})") from None
        finally:
            db.close()


# -- export ----------------------------------------------------------------------------------------------
ExportFormat = Literal["jsonl", "csv"]


def export(events: Iterator[AuditEvent] | Sequence[AuditEvent], out: TextIO, fmt: ExportFormat) -> int:
    """Write events as JSON lines or CSV (``flags`` as a JSON string in its column); returns the count."""
    n = 0
    if fmt == "jsonl":
        for e in events:
            out.write(json.dumps(e.as_dict(), ensure_ascii=False) + "\n")
            n += 1
        return n
    if fmt != "csv":
        raise InvalidRequestError(f"export format must be jsonl or csv, not {fmt!r}", param="format")
    w = csv.writer(out)
    w.writerow(FIELDS)
    for e in events:
        d = e.as_dict()
        d["flags"] = json.dumps(e.flags, ensure_ascii=False) if e.flags else ""
        w.writerow([d[k] for k in FIELDS])
        n += 1
    return n


def parse_export(text: str, fmt: ExportFormat) -> list[AuditEvent]:
    """Events back from ``export``'s output (for checks and re-imports)."""
    if fmt == "jsonl":
        return [AuditEvent(**json.loads(line)) for line in text.splitlines() if line.strip()]
    rows = list(csv.DictReader(io.StringIO(text)))
    return [
        AuditEvent(
            ts=float(r["ts"]),
            who=r["who"],
            method=r["method"],
            route=r["route"],
            status=int(r["status"]),
            outcome=r["outcome"],  # type: ignore[arg-type]
            latency_ms=float(r["latency_ms"]),
            request_bytes=int(r["request_bytes"]),
            response_bytes=int(r["response_bytes"]),
            flags=json.loads(r["flags"]) if r["flags"] else [],
        )
        for r in rows
    ]


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(value: str, *, now: float | None = None) -> float:
    """A point in time: ``7d`` / ``12h`` / ``30m`` ago, an ISO date or date-time (UTC unless it says
    otherwise), or Unix seconds."""
    v = value.strip()
    m = _RELATIVE.match(v)
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(v)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(v)
    except ValueError:
        raise InvalidRequestError(
            f"cannot read the time {value!r}: use 7d, 12h, 30m (ago), 2025-01-31, 2025-01-31T08:00 "
            "or Unix seconds",
            param="since",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


# -- the middleware ----------------------------------------------------------------------------------------
SKIPPED_PREFIXES = ("/console", "/docs", "/openapi.json", "/health", "/favicon.ico")


class AuditMiddleware:
    """Writes one audit row per HTTP request (not for the console's static files, docs and /health).

    The route is the matched template (``/v1/kb/{name}/search``; ``other`` when none matched); who is the
    API key id, ``anonymous`` on a server without keys, ``unauthenticated`` when a key was needed and not
    accepted. Flags are the content filter's events that the route put in ``request.state``."""

    def __init__(self, app: Any, skip: Sequence[str] = SKIPPED_PREFIXES) -> None:
        self.app = app
        self.skip = tuple(skip)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        state = (
            getattr(scope["app"].state, "glmkit", None)
            if scope["type"] == "http" and "app" in scope
            else None
        )
        audit: AuditLog | None = getattr(state, "audit", None)
        if audit is None or scope["path"] == "/" or scope["path"].startswith(self.skip):
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        status, sent, received, completed = 500, 0, 0, False
        for k, v in scope.get("headers", []):
            if k == b"content-length" and v.isdigit():
                received = int(v)
        counted = 0
        scope.setdefault("state", {})

        async def counting_receive() -> Any:
            nonlocal counted
            msg = await receive()
            if msg["type"] == "http.request":
                counted += len(msg.get("body", b""))
            return msg

        async def watching_send(msg: Any) -> None:
            nonlocal status, sent, completed
            if msg["type"] == "http.response.start":
                status = msg["status"]
            elif msg["type"] == "http.response.body":
                sent += len(msg.get("body", b""))
                if not msg.get("more_body", False):
                    completed = True
            await send(msg)

        try:
            await self.app(scope, counting_receive, watching_send)
        finally:
            st = scope.get("state", {})
            key_id = st.get("key_id")
            who = key_id if key_id else ("unauthenticated" if getattr(state, "keys", None) else "anonymous")
            flags = list(st.get("safety_events", ()))
            route = getattr(scope.get("route"), "path", None) or "other"
            audit.record(
                AuditEvent(
                    ts=time.time(),
                    who=who,
                    method=scope.get("method", "?"),
                    route=route,
                    status=status,
                    outcome=outcome_of(status, flags, completed),
                    latency_ms=(time.monotonic() - start) * 1000,
                    request_bytes=max(received, counted),
                    response_bytes=sent,
                    flags=flags,
                )
            )
