"""What a knowledge-base store keeps and answers: the interface both stores implement."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from glmkit.errors import GlmkitError

Vectors = npt.NDArray[np.float32]


class KBNotFoundError(GlmkitError):
    status = 404
    code = "kb_not_found"
    type = "invalid_request_error"


class KBExistsError(GlmkitError):
    status = 409
    code = "kb_exists"
    type = "invalid_request_error"


@dataclass(frozen=True)
class KBRecord:
    name: str
    description: str
    created: float
    embedder: str
    dim: int
    owner: str | None = None  # an API key id; None: every caller may use it
    n_documents: int = 0
    n_chunks: int = 0


@dataclass(frozen=True)
class DocRecord:
    id: str
    kb: str
    source: str  # the path (or name) given at ingestion
    sha256: str
    size: int
    added: float
    n_chunks: int = 0
    tags: tuple[str, ...] = ()
    title: str = ""


@dataclass(frozen=True)
class ChunkRecord:
    id: str
    kb: str
    doc_id: str
    ordinal: int
    text: str
    location: str
    heading: str
    kind: str
    answer: str
    source: str
    tags: tuple[str, ...] = ()
    title: str = ""


@dataclass(frozen=True)
class NewChunk:
    text: str
    location: str
    heading: str
    kind: str
    answer: str
    tokens: str  # jieba tokens, space-joined, for BM25
    vector: Any = field(repr=False, default=None)


@dataclass(frozen=True)
class Filters:
    sources: tuple[str, ...] = ()  # exact sources or fnmatch patterns
    tags: tuple[str, ...] = ()  # a document must carry all of them


class Store(Protocol):
    name: str

    def create_kb(
        self, name: str, description: str, embedder: str, dim: int, owner: str | None
    ) -> KBRecord: ...

    def get_kb(self, name: str) -> KBRecord: ...

    def list_kbs(self) -> list[KBRecord]: ...

    def delete_kb(self, name: str) -> None: ...

    def find_document(self, kb: str, source: str) -> DocRecord | None: ...

    def list_documents(self, kb: str) -> list[DocRecord]: ...

    def chunk_lengths(self, kb: str) -> dict[str, list[int]]:
        """The character length of every chunk, per document id."""
        ...

    def replace_document(self, doc: DocRecord, chunks: Sequence[NewChunk]) -> DocRecord:
        """Atomically: drop the document's old chunks (if any), store the new ones. All or nothing."""
        ...

    def remove_document(self, kb: str, doc: str) -> DocRecord: ...

    def bm25(
        self, kbs: Sequence[str], tokens: Sequence[str], n: int, filters: Filters
    ) -> list[tuple[str, float]]:
        """Best ``n`` chunk ids for the query tokens, with BM25 scores (higher is better)."""
        ...

    def vector(self, kbs: Sequence[str], query: Vectors, n: int, filters: Filters) -> list[tuple[str, float]]:
        """Best ``n`` chunk ids by cosine similarity (vectors are L2-normalised)."""
        ...

    def chunks(self, ids: Sequence[str]) -> list[ChunkRecord]: ...

    def close(self) -> None: ...


def size_stats(lengths: Sequence[int]) -> dict[str, float]:
    """min / median / max of chunk lengths (characters), for ``glmkit kb docs``."""
    import statistics

    if not lengths:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)}


def allowed_documents(store: Store, kbs: Sequence[str], filters: Filters) -> set[str] | None:
    """Ids of the documents the filters admit (``None``: no filter, every document)."""
    import fnmatch

    if not filters.sources and not filters.tags:
        return None
    allowed = set()
    for kb in kbs:
        for d in store.list_documents(kb):
            if filters.sources and not any(
                d.source == s or fnmatch.fnmatch(d.source, s) for s in filters.sources
            ):
                continue
            if filters.tags and not set(filters.tags) <= set(d.tags):
                continue
            allowed.add(d.id)
    return allowed


def doc_from_row(row: Sequence[Any]) -> DocRecord:
    """A ``DocRecord`` from the columns ``id, kb, source, sha256, size, added, n_chunks, tags, title``."""
    tags = tuple(json.loads(row[7]))
    return DocRecord(row[0], row[1], row[2], row[3], int(row[4]), float(row[5]), int(row[6]), tags, row[8])


def chunk_from_row(r: Sequence[Any]) -> ChunkRecord:
    """A ``ChunkRecord`` from the chunk columns, then the document's ``source, tags, title``."""
    return ChunkRecord(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], tuple(json.loads(r[10])), r[11]
    )
