"""The embedded store: SQLite for knowledge bases, documents and chunks, FTS5 for BM25 over jieba tokens,
and the vectors as float32 blobs searched exactly with numpy (a matrix per knowledge base, cached and
rebuilt when the knowledge base changes). Each document is replaced in one transaction, so a crash or
kill leaves the store as it was before that document or fully updated."""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from glmkit.errors import InvalidRequestError
from glmkit.kb.store import (
    ChunkRecord,
    DocRecord,
    Filters,
    KBExistsError,
    KBNotFoundError,
    KBRecord,
    NewChunk,
    Vectors,
    allowed_documents,
    chunk_from_row,
    doc_from_row,
)
from glmkit.storage.crypto import IntegrityError, StoreKey, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS kbs (
    name TEXT PRIMARY KEY, description TEXT NOT NULL, created REAL NOT NULL, embedder TEXT NOT NULL,
    dim INTEGER NOT NULL, owner TEXT, version INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, kb TEXT NOT NULL REFERENCES kbs(name) ON DELETE CASCADE, source TEXT NOT NULL,
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, added REAL NOT NULL, n_chunks INTEGER NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]', title TEXT NOT NULL DEFAULT '', UNIQUE (kb, source));
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, kb TEXT NOT NULL, doc_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, text TEXT NOT NULL, location TEXT NOT NULL, heading TEXT NOT NULL,
    kind TEXT NOT NULL, answer TEXT NOT NULL, vec BLOB);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_kb ON chunks(kb);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(tokens, chunk_id UNINDEXED, kb UNINDEXED);
"""


class SQLiteStore:
    name = "sqlite"

    def __init__(self, path: Path, key: StoreKey | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = connect(path, key)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[int, list[str], list[str], Vectors]] = {}

    # -- knowledge bases -----------------------------------------------------------------------------------
    def create_kb(self, name: str, description: str, embedder: str, dim: int, owner: str | None) -> KBRecord:
        check_name(name)
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO kbs (name, description, created, embedder, dim, owner) VALUES (?,?,?,?,?,?)",
                    (name, description, time.time(), embedder, dim, owner),
                )
            except IntegrityError:
                raise KBExistsError(f"knowledge base {name!r} already exists", param="name") from None
        return self.get_kb(name)

    def get_kb(self, name: str) -> KBRecord:
        with self._lock:
            row = self._db.execute(
                "SELECT name, description, created, embedder, dim, owner,"
                " (SELECT count(*) FROM documents d WHERE d.kb = k.name),"
                " (SELECT count(*) FROM chunks c WHERE c.kb = k.name) FROM kbs k WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            raise KBNotFoundError(f"no knowledge base named {name!r} (glmkit kb list shows them)", param="kb")
        return KBRecord(*row)

    def list_kbs(self) -> list[KBRecord]:
        with self._lock:
            names = [r[0] for r in self._db.execute("SELECT name FROM kbs ORDER BY name")]
        return [self.get_kb(n) for n in names]

    def delete_kb(self, name: str) -> None:
        self.get_kb(name)
        with self._lock, self._tx():
            self._db.execute("DELETE FROM chunks_fts WHERE kb = ?", (name,))
            self._db.execute("DELETE FROM chunks WHERE kb = ?", (name,))
            self._db.execute("DELETE FROM documents WHERE kb = ?", (name,))
            self._db.execute("DELETE FROM kbs WHERE name = ?", (name,))
        self._cache.pop(name, None)

    # -- documents -----------------------------------------------------------------------------------------
    def find_document(self, kb: str, source: str) -> DocRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {DOC_COLS} FROM documents WHERE kb = ? AND source = ?", (kb, source)
            ).fetchone()
        return doc_from_row(row) if row else None

    def list_documents(self, kb: str) -> list[DocRecord]:
        self.get_kb(kb)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {DOC_COLS} FROM documents WHERE kb = ? ORDER BY source", (kb,)
            ).fetchall()
        return [doc_from_row(r) for r in rows]

    def chunk_lengths(self, kb: str) -> dict[str, list[int]]:
        self.get_kb(kb)
        out: dict[str, list[int]] = {}
        with self._lock:
            for doc_id, n in self._db.execute("SELECT doc_id, length(text) FROM chunks WHERE kb = ?", (kb,)):
                out.setdefault(doc_id, []).append(int(n))
        return out

    def replace_document(self, doc: DocRecord, chunks: Sequence[NewChunk]) -> DocRecord:
        kb = self.get_kb(doc.kb)
        for c in chunks:
            if c.vector is None or len(c.vector) != kb.dim:
                raise InvalidRequestError(f"every chunk needs a {kb.dim}-dimensional vector")
        with self._lock, self._tx():
            old = self._db.execute(
                "SELECT id FROM documents WHERE kb = ? AND source = ?", (doc.kb, doc.source)
            ).fetchone()
            if old is not None:
                self._dropdoc_from_row(old[0])
            doc_id = doc.id or secrets.token_hex(8)
            self._db.execute(
                "INSERT INTO documents (id, kb, source, sha256, size, added, n_chunks, tags, title)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    doc_id,
                    doc.kb,
                    doc.source,
                    doc.sha256,
                    doc.size,
                    doc.added,
                    len(chunks),
                    json.dumps(list(doc.tags)),
                    doc.title,
                ),
            )
            for i, c in enumerate(chunks):
                cid = f"{doc_id}-{i}"
                self._db.execute(
                    "INSERT INTO chunks (id, kb, doc_id, ordinal, text, location, heading, kind, answer, vec)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        cid,
                        doc.kb,
                        doc_id,
                        i,
                        c.text,
                        c.location,
                        c.heading,
                        c.kind,
                        c.answer,
                        np.asarray(c.vector, dtype="<f4").tobytes(),
                    ),
                )
                self._db.execute(
                    "INSERT INTO chunks_fts (tokens, chunk_id, kb) VALUES (?,?,?)", (c.tokens, cid, doc.kb)
                )
            self._db.execute("UPDATE kbs SET version = version + 1 WHERE name = ?", (doc.kb,))
        found = self.find_document(doc.kb, doc.source)
        assert found is not None
        return found

    def _dropdoc_from_row(self, doc_id: str) -> None:
        self._db.execute(
            "DELETE FROM chunks_fts WHERE chunk_id IN (SELECT id FROM chunks WHERE doc_id = ?)", (doc_id,)
        )
        self._db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        self._db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    def remove_document(self, kb: str, doc: str) -> DocRecord:
        self.get_kb(kb)
        with self._lock:
            row = self._db.execute(
                f"SELECT {DOC_COLS} FROM documents WHERE kb = ? AND (id = ? OR source = ?)", (kb, doc, doc)
            ).fetchone()
            if row is None:
                raise KBNotFoundError(f"knowledge base {kb!r} has no document {doc!r}", param="doc")
            with self._tx():
                self._dropdoc_from_row(row[0])
                self._db.execute("UPDATE kbs SET version = version + 1 WHERE name = ?", (kb,))
        return doc_from_row(row)

    # -- search --------------------------------------------------------------------------------------------
    def bm25(
        self, kbs: Sequence[str], tokens: Sequence[str], n: int, filters: Filters
    ) -> list[tuple[str, float]]:
        terms = sorted({t.replace('"', "") for t in tokens if t.strip()})
        if not terms or not kbs:
            return []
        query = " OR ".join(f'"{t}"' for t in terms if t)
        allowed = allowed_documents(self, kbs, filters)
        marks = ",".join("?" * len(kbs))
        limit = n if allowed is None else n * 20
        with self._lock:
            rows = self._db.execute(
                "SELECT chunk_id, bm25(chunks_fts) FROM chunks_fts"
                f" WHERE chunks_fts MATCH ? AND kb IN ({marks})"
                " ORDER BY bm25(chunks_fts) LIMIT ?",
                (query, *kbs, limit),
            ).fetchall()
        out = [(cid, -float(score)) for cid, score in rows]  # FTS5's bm25 is negated: lower is better
        if allowed is not None:
            out = [(c, s) for c, s in out if c.rsplit("-", 1)[0] in allowed][:n]
        return out

    def _matrix(self, kb: str) -> tuple[list[str], list[str], Vectors]:
        with self._lock:
            version = self._db.execute("SELECT version FROM kbs WHERE name = ?", (kb,)).fetchone()[0]
            hit = self._cache.get(kb)
            if hit is not None and hit[0] == version:
                return hit[1], hit[2], hit[3]
            rows = self._db.execute(
                "SELECT id, doc_id, vec FROM chunks WHERE kb = ? ORDER BY rowid", (kb,)
            ).fetchall()
            dim = self.get_kb(kb).dim
            mat = (
                np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), dim)
                if rows
                else np.zeros((0, dim), np.float32)
            )
            ids, docs = [r[0] for r in rows], [r[1] for r in rows]
            self._cache[kb] = (version, ids, docs, mat)
            return ids, docs, mat

    def vector(self, kbs: Sequence[str], query: Vectors, n: int, filters: Filters) -> list[tuple[str, float]]:
        allowed = allowed_documents(self, kbs, filters)
        out: list[tuple[str, float]] = []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        for kb in kbs:
            ids, docs, mat = self._matrix(kb)
            if not ids:
                continue
            scores = mat @ q
            if allowed is not None:
                mask = np.array([d in allowed for d in docs])
                scores = np.where(mask, scores, -np.inf)
            k = min(n, len(ids))
            top = np.argpartition(-scores, k - 1)[:k]
            out.extend((ids[i], float(scores[i])) for i in top if np.isfinite(scores[i]))
        out.sort(key=lambda x: -x[1])
        return out[:n]

    def chunks(self, ids: Sequence[str]) -> list[ChunkRecord]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, c.kb, c.doc_id, c.ordinal, c.text, c.location, c.heading, c.kind, c.answer,"
                " d.source,"
                f" d.tags, d.title FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
                tuple(ids),
            ).fetchall()
        by_id = {r[0]: chunk_from_row(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self) -> Any:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


DOC_COLS = "id, kb, source, sha256, size, added, n_chunks, tags, title"


def check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[\w\-.]{1,64}", name) or name.startswith("."):
        raise InvalidRequestError(
            f"knowledge base name {name!r}: use 1-64 letters, digits, '_', '-' or '.'", param="name"
        )
