"""Customer-service sessions in SQLite: sessions, messages (with each bot answer's trace), the hand-off
queue and feedback; and the export of well-rated answers as fine-tuning or FAQ data."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from glmkit.errors import GlmkitError
from glmkit.storage.crypto import StoreKey, connect

if TYPE_CHECKING:
    from glmkit.apps.bot_config import BotConfig


class SessionNotFoundError(GlmkitError):
    status = 404
    code = "session_not_found"
    type = "invalid_request_error"


class SessionStore:
    """Sessions, messages, hand-offs and feedback in SQLite (survives restarts)."""

    def __init__(self, path: Path, key: StoreKey | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(path, key)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, bot TEXT NOT NULL, user TEXT NOT NULL,
                created REAL NOT NULL, state TEXT NOT NULL, agent TEXT, grp TEXT, clarify INTEGER NOT NULL DEFAULT 0);
            CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, session TEXT NOT NULL, role TEXT NOT NULL,
                text TEXT NOT NULL, trace TEXT, ts REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS messages_session ON messages(session, ts);
            CREATE TABLE IF NOT EXISTS handoffs (session TEXT PRIMARY KEY, bot TEXT NOT NULL, reason TEXT NOT NULL,
                summary TEXT NOT NULL, grp TEXT NOT NULL, status TEXT NOT NULL, agent TEXT, ts REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS feedback (message TEXT PRIMARY KEY, rating INTEGER, comment TEXT, ts REAL NOT NULL);
            """
        )
        self._lock = threading.RLock()

    def q(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several writes that stand or fall together: a kill midway leaves none of them (WAL rollback).
        Other threads wait on the lock until the transaction ends; nesting is not supported."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, bot: str, user: str) -> str:
        sid = secrets.token_hex(8)
        self.q(
            "INSERT INTO sessions (id, bot, user, created, state) VALUES (?,?,?,?,?)",
            (sid, bot, user, time.time(), "bot"),
        )
        return sid

    def get(self, bot: str, sid: str) -> dict[str, Any]:
        rows = self.q(
            "SELECT id, bot, user, created, state, agent, grp, clarify FROM sessions WHERE id = ? AND bot = ?",
            (sid, bot),
        )
        if not rows:
            raise SessionNotFoundError(
                f"no session {sid!r} for bot {bot!r}: create one first", param="session"
            )
        keys = ("id", "bot", "user", "created", "state", "agent", "group", "clarify")
        return dict(zip(keys, rows[0], strict=True))

    def set(self, sid: str, **fields: Any) -> None:
        cols = {"state": "state", "agent": "agent", "group": "grp", "clarify": "clarify"}
        if fields:  # one statement: the fields change together
            assignments = ", ".join(f"{cols[k]} = ?" for k in fields)  # names from the fixed map above
            self.q(f"UPDATE sessions SET {assignments} WHERE id = ?", (*fields.values(), sid))

    def add_message(self, sid: str, role: str, text: str, trace: dict[str, Any] | None = None) -> str:
        mid = secrets.token_hex(8)
        self.q(
            "INSERT INTO messages VALUES (?,?,?,?,?,?)",
            (mid, sid, role, text, json.dumps(trace, ensure_ascii=False) if trace else None, time.time()),
        )
        return mid

    def messages(self, sid: str) -> list[dict[str, Any]]:
        rows = self.q(
            "SELECT id, role, text, trace, ts FROM messages WHERE session = ? ORDER BY ts, rowid", (sid,)
        )
        return [
            {"id": r[0], "role": r[1], "text": r[2], "trace": json.loads(r[3]) if r[3] else None, "ts": r[4]}
            for r in rows
        ]


def rated_answers(store: SessionStore, config: BotConfig, min_rating: int = 1) -> list[dict[str, Any]]:
    """Bot answers rated at least ``min_rating``, each with the customer message it answered."""
    rows = store.q(
        "SELECT m.id, m.session, m.text, m.ts, f.rating, f.comment FROM messages m JOIN sessions s ON s.id = m.session"
        " JOIN feedback f ON f.message = m.id WHERE s.bot = ? AND m.role = 'assistant' AND f.rating >= ? ORDER BY m.ts",
        (config.name, min_rating),
    )
    out = []
    for mid, sid, text, ts, rating, comment in rows:
        q = store.q(
            "SELECT text FROM messages WHERE session = ? AND role = 'user' AND ts <= ? ORDER BY ts DESC, rowid DESC LIMIT 1",
            (sid, ts),
        )
        if q:
            out.append(
                {
                    "message_id": mid,
                    "question": q[0][0],
                    "answer": text,
                    "rating": rating,
                    "comment": comment,
                }
            )
    return out


def export_feedback(
    store: SessionStore, config: BotConfig, fmt: Literal["sft", "faq"], min_rating: int = 1
) -> str:
    """Well-rated answers as fine-tuning data (JSON lines of OpenAI-style messages, with the persona as
    the system message) or as FAQ rows (CSV question,answer) ready for glmkit kb add."""
    import csv
    import io

    items = rated_answers(store, config, min_rating)
    if fmt == "sft":
        return "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": config.persona},
                        {"role": "user", "content": it["question"]},
                        {"role": "assistant", "content": it["answer"]},
                    ]
                },
                ensure_ascii=False,
            )
            + "\n"
            for it in items
        )
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["question", "answer"])
    for it in items:
        w.writerow([it["question"], it["answer"]])
    return buf.getvalue()
