"""PostgreSQL + pgvector: the server-grade store. Chunks carry their vectors as ``vector(dim)`` (HNSW
index, cosine) and their jieba tokens as a ``text[]``; each (term, chunk) pair is also a row of
``glmkit_postings`` (term frequency, chunk length), so BM25 reads only the postings of the query's terms
through an index, and document frequencies are index-only counts. Each document is replaced in one
transaction."""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from glmkit.errors import InvalidRequestError, ModelLoadError
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
from glmkit.kb.stores.sqlite import DOC_COLS, check_name

K1, B = 1.2, 0.75

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS glmkit_kbs (
    name TEXT PRIMARY KEY, description TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, embedder TEXT NOT NULL,
    dim INTEGER NOT NULL, owner TEXT, version BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS glmkit_documents (
    id TEXT PRIMARY KEY, kb TEXT NOT NULL REFERENCES glmkit_kbs(name) ON DELETE CASCADE, source TEXT NOT NULL,
    sha256 TEXT NOT NULL, size BIGINT NOT NULL, added DOUBLE PRECISION NOT NULL, n_chunks INTEGER NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]', title TEXT NOT NULL DEFAULT '', UNIQUE (kb, source));
CREATE TABLE IF NOT EXISTS glmkit_chunks (
    id TEXT PRIMARY KEY, kb TEXT NOT NULL, doc_id TEXT NOT NULL REFERENCES glmkit_documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, text TEXT NOT NULL, location TEXT NOT NULL, heading TEXT NOT NULL,
    kind TEXT NOT NULL, answer TEXT NOT NULL, tokens TEXT[] NOT NULL, n_tokens INTEGER NOT NULL,
    vec vector({dim}) NOT NULL);
CREATE INDEX IF NOT EXISTS glmkit_chunks_kb ON glmkit_chunks(kb);
CREATE INDEX IF NOT EXISTS glmkit_chunks_doc ON glmkit_chunks(doc_id);
CREATE INDEX IF NOT EXISTS glmkit_chunks_vec ON glmkit_chunks USING hnsw (vec vector_cosine_ops);
CREATE TABLE IF NOT EXISTS glmkit_postings (
    kb TEXT NOT NULL, term TEXT NOT NULL,
    chunk_id TEXT NOT NULL REFERENCES glmkit_chunks(id) ON DELETE CASCADE,
    doc_id TEXT NOT NULL, tf INTEGER NOT NULL, dl INTEGER NOT NULL,
    PRIMARY KEY (kb, term, chunk_id));
CREATE INDEX IF NOT EXISTS glmkit_postings_chunk ON glmkit_postings(chunk_id);
"""

# Databases written before the postings table existed get theirs filled once, from the chunks' tokens.
BACKFILL = """
SELECT pg_advisory_xact_lock(7446391);
INSERT INTO glmkit_postings (kb, term, chunk_id, doc_id, tf, dl)
SELECT c.kb, t.term, c.id, c.doc_id, count(*), c.n_tokens
FROM glmkit_chunks c CROSS JOIN LATERAL unnest(c.tokens) AS t(term)
WHERE NOT EXISTS (SELECT 1 FROM glmkit_postings p WHERE p.chunk_id = c.id)
GROUP BY c.kb, t.term, c.id, c.doc_id, c.n_tokens
ON CONFLICT DO NOTHING;
"""


class PgVectorStore:
    name = "pgvector"

    def __init__(self, url: str, dim: int = 384) -> None:
        try:
            import psycopg
        except ImportError as e:
            raise ModelLoadError(
                "the pgvector store needs psycopg: pip install 'psycopg[binary]==3.3.9'"
            ) from e
        try:
            self._db = psycopg.connect(url, autocommit=True)
        except psycopg.Error as e:
            raise ModelLoadError(f"cannot connect to PostgreSQL at {_redact(url)}: {e}") from None
        self.dim = dim
        self._lock = threading.RLock()
        try:
            with self._db.cursor() as cur:
                cur.execute(SCHEMA.format(dim=dim))
        except psycopg.Error as e:
            raise ModelLoadError(
                f"PostgreSQL at {_redact(url)} cannot hold glmkit's tables (is pgvector installed?): {e}"
            ) from None
        self._stats: dict[tuple[str, ...], tuple[list[int], int, float]] = {}
        try:
            if self._q(
                "SELECT EXISTS (SELECT 1 FROM glmkit_chunks)"
                " AND NOT EXISTS (SELECT 1 FROM glmkit_postings LIMIT 1)"
            )[0][0]:
                with self._db.transaction(), self._db.cursor() as cur:
                    cur.execute(BACKFILL)
        except psycopg.Error as e:
            raise ModelLoadError(
                f"PostgreSQL at {_redact(url)}: cannot index the stored chunks: {e}"
            ) from None

    def _q(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock, self._db.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else []

    # -- knowledge bases -----------------------------------------------------------------------------------
    def create_kb(self, name: str, description: str, embedder: str, dim: int, owner: str | None) -> KBRecord:
        check_name(name)
        if dim != self.dim:
            raise InvalidRequestError(
                f"this store holds {self.dim}-dimensional vectors, the embedder gives {dim}"
            )
        import psycopg

        try:
            self._q(
                "INSERT INTO glmkit_kbs (name, description, created, embedder, dim, owner) VALUES (%s,%s,%s,%s,%s,%s)",
                (name, description, time.time(), embedder, dim, owner),
            )
        except psycopg.errors.UniqueViolation:
            raise KBExistsError(f"knowledge base {name!r} already exists", param="name") from None
        return self.get_kb(name)

    def get_kb(self, name: str) -> KBRecord:
        rows = self._q(
            "SELECT name, description, created, embedder, dim, owner,"
            " (SELECT count(*) FROM glmkit_documents d WHERE d.kb = k.name),"
            " (SELECT count(*) FROM glmkit_chunks c WHERE c.kb = k.name) FROM glmkit_kbs k WHERE name = %s",
            (name,),
        )
        if not rows:
            raise KBNotFoundError(f"no knowledge base named {name!r} (glmkit kb list shows them)", param="kb")
        r = rows[0]
        return KBRecord(r[0], r[1], r[2], r[3], r[4], r[5], int(r[6]), int(r[7]))

    def list_kbs(self) -> list[KBRecord]:
        return [self.get_kb(r[0]) for r in self._q("SELECT name FROM glmkit_kbs ORDER BY name")]

    def delete_kb(self, name: str) -> None:
        self.get_kb(name)
        with self._lock, self._db.transaction():
            self._q("DELETE FROM glmkit_chunks WHERE kb = %s", (name,))
            self._q("DELETE FROM glmkit_documents WHERE kb = %s", (name,))
            self._q("DELETE FROM glmkit_kbs WHERE name = %s", (name,))

    # -- documents -----------------------------------------------------------------------------------------
    def find_document(self, kb: str, source: str) -> DocRecord | None:
        rows = self._q(f"SELECT {DOC_COLS} FROM glmkit_documents WHERE kb = %s AND source = %s", (kb, source))
        return doc_from_row(rows[0]) if rows else None

    def list_documents(self, kb: str) -> list[DocRecord]:
        self.get_kb(kb)
        return [
            doc_from_row(r)
            for r in self._q(f"SELECT {DOC_COLS} FROM glmkit_documents WHERE kb = %s ORDER BY source", (kb,))
        ]

    def chunk_lengths(self, kb: str) -> dict[str, list[int]]:
        self.get_kb(kb)
        out: dict[str, list[int]] = {}
        for doc_id, n in self._q("SELECT doc_id, char_length(text) FROM glmkit_chunks WHERE kb = %s", (kb,)):
            out.setdefault(doc_id, []).append(int(n))
        return out

    def replace_document(self, doc: DocRecord, chunks: Sequence[NewChunk]) -> DocRecord:
        kb = self.get_kb(doc.kb)
        for c in chunks:
            if c.vector is None or len(c.vector) != kb.dim:
                raise InvalidRequestError(f"every chunk needs a {kb.dim}-dimensional vector")
        with self._lock, self._db.transaction():
            self._q("DELETE FROM glmkit_documents WHERE kb = %s AND source = %s", (doc.kb, doc.source))
            doc_id = doc.id or secrets.token_hex(8)
            self._q(
                "INSERT INTO glmkit_documents (id, kb, source, sha256, size, added, n_chunks, tags, title)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
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
            with self._db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO glmkit_chunks (id, kb, doc_id, ordinal, text, location, heading, kind, answer, tokens,"
                    " n_tokens, vec) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::vector)",
                    [
                        (
                            f"{doc_id}-{i}",
                            doc.kb,
                            doc_id,
                            i,
                            c.text,
                            c.location,
                            c.heading,
                            c.kind,
                            c.answer,
                            c.tokens.split(),
                            len(c.tokens.split()),
                            _vec(c.vector),
                        )
                        for i, c in enumerate(chunks)
                    ],
                )
                # COPY: a document of 1,000 chunks has some 40,000 postings
                with cur.copy("COPY glmkit_postings (kb, term, chunk_id, doc_id, tf, dl) FROM STDIN") as cp:
                    for i, c in enumerate(chunks):
                        words = c.tokens.split()
                        for term, tf in Counter(words).items():
                            cp.write_row((doc.kb, term, f"{doc_id}-{i}", doc_id, tf, len(words)))
            self._q("UPDATE glmkit_kbs SET version = version + 1 WHERE name = %s", (doc.kb,))
        found = self.find_document(doc.kb, doc.source)
        assert found is not None
        return found

    def remove_document(self, kb: str, doc: str) -> DocRecord:
        self.get_kb(kb)
        rows = self._q(
            f"SELECT {DOC_COLS} FROM glmkit_documents WHERE kb = %s AND (id = %s OR source = %s)",
            (kb, doc, doc),
        )
        if not rows:
            raise KBNotFoundError(f"knowledge base {kb!r} has no document {doc!r}", param="doc")
        with self._lock, self._db.transaction():
            self._q("DELETE FROM glmkit_documents WHERE id = %s", (rows[0][0],))
            self._q("UPDATE glmkit_kbs SET version = version + 1 WHERE name = %s", (kb,))
        return doc_from_row(rows[0])

    # -- search --------------------------------------------------------------------------------------------
    def bm25(
        self, kbs: Sequence[str], tokens: Sequence[str], n: int, filters: Filters
    ) -> list[tuple[str, float]]:
        terms = sorted({t for t in tokens if t.strip()})
        if not terms or not kbs:
            return []
        allowed = allowed_documents(self, kbs, filters)
        total, avgdl = self._collection(kbs)
        if total == 0:
            return []
        dfs = self._q(
            "SELECT term, count(*) FROM glmkit_postings WHERE kb = ANY(%s) AND term = ANY(%s) GROUP BY term",
            (list(kbs), terms),
        )
        idf = {t: math.log(1 + (total - df + 0.5) / (df + 0.5)) for t, df in dfs if df > 0}
        if not idf:
            return []
        qterms = list(idf)
        doc_filter = "" if allowed is None else " AND p.doc_id = ANY(%s)"
        args: list[Any] = [qterms, [idf[t] for t in qterms], K1, K1, B, B, avgdl, list(kbs)]
        if allowed is not None:
            args.append(sorted(allowed))
        rows = self._q(
            "WITH q AS (SELECT * FROM unnest(%s::text[], %s::float8[]) AS q(term, idf))"
            " SELECT p.chunk_id, sum(q.idf * p.tf * (%s + 1) / (p.tf + %s * (1 - %s + %s * p.dl / %s))) AS s"
            " FROM glmkit_postings p JOIN q ON p.term = q.term"
            " WHERE p.kb = ANY(%s)"
            + doc_filter
            + " GROUP BY p.chunk_id ORDER BY s DESC, p.chunk_id LIMIT "
            + str(int(n)),
            args,
        )
        return [(r[0], float(r[1])) for r in rows]

    def _collection(self, kbs: Sequence[str]) -> tuple[int, float]:
        """Chunks and their mean length in tokens over ``kbs``, recounted only when one has changed."""
        key = tuple(sorted(kbs))
        versions = [
            int(v)
            for (v,) in self._q(
                "SELECT version FROM glmkit_kbs WHERE name = ANY(%s) ORDER BY name", (list(key),)
            )
        ]
        hit = self._stats.get(key)
        if hit is not None and hit[0] == versions:
            return hit[1], hit[2]
        total, avg = self._q(
            "SELECT count(*), coalesce(avg(n_tokens), 1) FROM glmkit_chunks WHERE kb = ANY(%s)", (list(key),)
        )[0]
        self._stats[key] = (versions, int(total), float(avg) or 1.0)
        return int(total), float(avg) or 1.0

    def vector(self, kbs: Sequence[str], query: Vectors, n: int, filters: Filters) -> list[tuple[str, float]]:
        allowed = allowed_documents(self, kbs, filters)
        q = _vec(query)
        doc_filter = "" if allowed is None else " AND doc_id = ANY(%s)"
        args: list[Any] = [q, list(kbs)]
        if allowed is not None:
            args.append(sorted(allowed))
        args += [q, int(n)]
        with self._lock, self._db.transaction():
            self._q(f"SET LOCAL hnsw.ef_search = {max(40, int(n) * 2)}")
            rows = self._q(
                "SELECT id, 1 - (vec <=> %s::vector) FROM glmkit_chunks WHERE kb = ANY(%s)"
                + doc_filter
                + " ORDER BY vec <=> %s::vector LIMIT %s",
                args,
            )
        return [(r[0], float(r[1])) for r in rows]

    def chunks(self, ids: Sequence[str]) -> list[ChunkRecord]:
        if not ids:
            return []
        rows = self._q(
            "SELECT c.id, c.kb, c.doc_id, c.ordinal, c.text, c.location, c.heading, c.kind, c.answer, d.source,"
            " d.tags, d.title FROM glmkit_chunks c JOIN glmkit_documents d ON d.id = c.doc_id WHERE c.id = ANY(%s)",
            (list(ids),),
        )
        by_id = {r[0]: chunk_from_row(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _vec(v: Any) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(v, dtype=np.float32).reshape(-1)) + "]"


def _redact(url: str) -> str:
    import re

    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
