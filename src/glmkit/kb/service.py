"""Knowledge bases as one service: ingestion (load → split → tokens → embed → store, atomically per
file), hybrid retrieval (BM25 + vectors, their scores standardised and mixed, then reranked) and the
access rule (a knowledge base with an owner is visible to that API key only)."""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from glmkit.errors import InvalidRequestError
from glmkit.kb.embed import Embedder
from glmkit.kb.loaders import MAX_FILE_BYTES, LoadError, load, supported
from glmkit.kb.rerank import Reranker
from glmkit.kb.splitter import Piece, split
from glmkit.kb.store import ChunkRecord, DocRecord, Filters, KBNotFoundError, KBRecord, NewChunk, Store
from glmkit.kb.text import tokens

Mode = Literal["hybrid", "bm25", "vector"]
Progress = Callable[[int, int, str], None]  # done, total, current file
# texts per embedder call: the local engine sorts a call's texts by length into batches and keeps both
# cores busy until the call's last batch, so fewer, larger calls waste less (32: 17.7 s for the FAQ text,
# 256: 14.4 s); an OpenAI-compatible server takes up to 2048 inputs a request
EMBED_BATCH = 256
# Both weights were chosen on other questions than the 60 colloquial ones docs/kb.md reports as the test:
# bench/data/debian_faq_colloquial_dev.jsonl (50 questions written for tuning) over the FAQ's three forms,
# and bench/kb.py's answers suite (112 FAQ questions), which has no headings.
VECTOR_WEIGHT = 0.7  # hybrid: 0.7 × z(cosine) + 0.3 × z(BM25) over each list's candidates
TITLE_WEIGHT = 0.5  # a chunk's vector: its own (heading path + text) + 0.5 × its section title's, normalised


@dataclass
class FileResult:
    source: str
    status: Literal["added", "replaced", "unchanged", "failed"]
    chunks: int = 0
    error: str = ""
    code: str = ""


@dataclass
class IngestReport:
    kb: str
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def chunks(self) -> int:
        return sum(f.chunks for f in self.files if f.status in ("added", "replaced"))

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)


@dataclass(frozen=True)
class Hit:
    chunk: ChunkRecord
    score: float  # the final ordering score (rerank score when reranked, else the fused z-scores)
    bm25_rank: int | None = None
    vector_rank: int | None = None
    vector_score: float | None = None
    rerank_score: float | None = None

    def as_dict(self) -> dict[str, object]:
        c = self.chunk
        return {
            "text": c.text,
            "answer": c.answer or None,
            "source": c.source,
            "location": c.location,
            "heading": c.heading,
            "kind": c.kind,
            "kb": c.kb,
            "chunk_id": c.id,
            "score": round(self.score, 6),
            "bm25_rank": self.bm25_rank,
            "vector_rank": self.vector_rank,
            "vector_score": None if self.vector_score is None else round(self.vector_score, 6),
            "rerank_score": None if self.rerank_score is None else round(self.rerank_score, 6),
        }


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files under the given paths: folders recursively (supported types, no hidden files), in order."""
    exts = {f".{e}" for e in supported()}
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                out.extend(
                    Path(root) / f
                    for f in sorted(files)
                    if not f.startswith(".") and Path(f).suffix.lower() in exts
                )
        else:
            out.append(p)
    return out


class KnowledgeBases:
    def __init__(
        self,
        store: Store,
        embedder: Callable[[], Embedder],
        reranker: Callable[[], Reranker | None] = lambda: None,
        *,
        chunk_size: int = 400,
        chunk_overlap: int = 60,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.store = store
        self._embedder_factory = embedder
        self._embedder: Embedder | None = None
        self._reranker_factory = reranker
        self._reranker: Reranker | None = None
        self._reranker_loaded = False
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_file_bytes = max_file_bytes

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._embedder_factory()
        return self._embedder

    @property
    def reranker(self) -> Reranker | None:
        if not self._reranker_loaded:
            self._reranker = self._reranker_factory()
            self._reranker_loaded = True
        return self._reranker

    # -- management ----------------------------------------------------------------------------------------
    def create(self, name: str, description: str = "", owner: str | None = None) -> KBRecord:
        e = self.embedder
        return self.store.create_kb(name, description, e.name, e.dim, owner)

    def visible(self, names: Sequence[str], caller: str | None) -> list[KBRecord]:
        """The named knowledge bases, checked to exist and to be open to ``caller`` (an API key id)."""
        if not names:
            raise InvalidRequestError("name at least one knowledge base", param="kb")
        out = []
        for n in names:
            kb = self.store.get_kb(n)
            if kb.owner is not None and caller is not None and kb.owner != caller:
                raise KBNotFoundError(
                    f"no knowledge base named {n!r} (glmkit kb list shows them)", param="kb"
                )
            out.append(kb)
        return out

    def list_kbs(self, caller: str | None = None) -> list[KBRecord]:
        return [k for k in self.store.list_kbs() if k.owner is None or caller is None or k.owner == caller]

    # -- ingestion -----------------------------------------------------------------------------------------
    def add(
        self,
        kb: str,
        paths: Iterable[str | Path],
        *,
        tags: Sequence[str] = (),
        progress: Progress | None = None,
        source_names: Sequence[str] | None = None,
    ) -> IngestReport:
        self.store.get_kb(kb)
        files = expand(paths)
        report = IngestReport(kb)
        t0 = time.monotonic()
        for i, path in enumerate(files):
            source = source_names[i] if source_names is not None else str(path)
            if progress is not None:
                progress(i, len(files), source)
            report.files.append(self._add_one(kb, path, source, tuple(tags)))
        if progress is not None:
            progress(len(files), len(files), "")
        report.seconds = time.monotonic() - t0
        return report

    def _add_one(self, kb: str, path: Path, source: str, tags: tuple[str, ...]) -> FileResult:
        try:
            if not path.is_file():
                raise LoadError(f"{path}: no such file")
            data_hash = _sha256(path)
            old = self.store.find_document(kb, source)
            if old is not None and old.sha256 == data_hash and old.tags == tags:
                return FileResult(source, "unchanged", old.n_chunks)
            sections = load(path, self.max_file_bytes)
            pieces = split(sections, self.chunk_size, self.chunk_overlap)
            chunks = self._embed(pieces)
            title = next((s.heading.split(" > ")[0] for s in sections if s.heading), path.stem)
            doc = DocRecord(
                "", kb, source, data_hash, path.stat().st_size, time.time(), len(chunks), tags, title
            )
            self.store.replace_document(doc, chunks)
            return FileResult(source, "replaced" if old is not None else "added", len(chunks))
        except InvalidRequestError as e:
            return FileResult(source, "failed", error=e.message, code=e.code)

    def _embed(self, pieces: Sequence[Piece]) -> list[NewChunk]:
        """Each chunk's vector is its indexed text's (heading path + text) plus ``TITLE_WEIGHT`` × its
        section title's (the last part of the heading path), normalised. A section's title says what all
        of its chunks are about, often better than any one chunk does (an FAQ's question, a manual's
        "Removing a package"); embedded on its own it gets a weight no title diluted in 300 characters
        of text can have. Each distinct title is embedded once per file."""
        titles = sorted({t for p in pieces if (t := section_title(p.heading))})
        # one list, so the embedder can batch titles and chunks by length together
        both = self._embed_texts([t[:4000] for t in titles] + [p.indexed[:4000] for p in pieces])
        title_vecs = dict(zip(titles, both[: len(titles)], strict=True))
        vecs = both[len(titles) :]
        out: list[NewChunk] = []
        for p, v in zip(pieces, vecs, strict=True):
            title = section_title(p.heading)
            if title:
                v = v + TITLE_WEIGHT * title_vecs[title]
                v = v / max(float(np.linalg.norm(v)), 1e-12)
            out.append(
                NewChunk(p.text, p.location, p.heading, p.kind, p.answer, " ".join(tokens(p.indexed)), v)
            )
        return out

    def _embed_texts(self, texts: Sequence[str]) -> list[npt.NDArray[np.float32]]:
        out: list[npt.NDArray[np.float32]] = []
        for off in range(0, len(texts), EMBED_BATCH):
            out.extend(self.embedder.embed(texts[off : off + EMBED_BATCH], "passage"))
        return out

    # -- retrieval -----------------------------------------------------------------------------------------
    def search(
        self,
        kbs: Sequence[str],
        query: str,
        *,
        k: int = 5,
        mode: Mode = "hybrid",
        rerank: bool = True,
        filters: Filters | None = None,
        candidates: int = 30,
        caller: str | None = None,
    ) -> list[Hit]:
        if not query.strip():
            raise InvalidRequestError("the query is empty", param="query")
        if not 1 <= k <= 100:
            raise InvalidRequestError(f"k must be within [1, 100], got {k}", param="k")
        names = [kb.name for kb in self.visible(kbs, caller)]
        filters = filters or Filters()
        n = max(candidates, k)
        bm: list[tuple[str, float]] = []
        vec: list[tuple[str, float]] = []
        if mode == "hybrid":
            # The two lists do not depend on each other, and both wait outside the GIL (SQLite or the
            # database server; the embedding engine's C code): side by side, a query costs the slower of
            # them instead of their sum.
            keyword = _SEARCH_POOL.submit(self.store.bm25, names, tokens(query), n, filters)
            vec = self._vector_list(names, query, n, filters)
            bm = keyword.result()
        elif mode == "bm25":
            bm = self.store.bm25(names, tokens(query), n, filters)
        else:
            vec = self._vector_list(names, query, n, filters)
        bm_rank = {cid: r for r, (cid, _) in enumerate(bm, 1)}
        vec_rank = {cid: r for r, (cid, _) in enumerate(vec, 1)}
        vec_score = dict(vec)
        fused = fuse(vec, bm)
        order = sorted(fused, key=lambda c: -fused[c])[:n]
        records = {c.id: c for c in self.store.chunks(order)}
        hits = [
            Hit(records[c], fused[c], bm_rank.get(c), vec_rank.get(c), vec_score.get(c))
            for c in order
            if c in records
        ]
        rr = self.reranker if rerank else None
        if rr is not None and hits:
            scores = rr.score(query, [_rerank_text(h.chunk) for h in hits])
            hits = [
                Hit(h.chunk, s, h.bm25_rank, h.vector_rank, h.vector_score, s)
                for h, s in sorted(zip(hits, scores, strict=True), key=lambda x: -x[1])
            ]
        return hits[:k]

    def _vector_list(
        self, names: Sequence[str], query: str, n: int, filters: Filters
    ) -> list[tuple[str, float]]:
        q = self.embedder.embed([query], "query")[0]
        return self.store.vector(names, q, n, filters)


def fuse(vec: Sequence[tuple[str, float]], bm: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Hybrid scores: each list's scores as z-scores over its own candidates, mixed ``VECTOR_WEIGHT`` :
    1 − ``VECTOR_WEIGHT``; a chunk missing from one list gets that list's lowest z-score.

    Unlike reciprocal rank fusion this keeps how far apart the scores are: a keyword list whose first
    hits are barely ahead of the rest (colloquial words found everywhere) moves the result little, a
    chunk far ahead of the others moves it a lot. One list alone (one mode, or a query none of whose
    words is indexed) keeps its own order."""
    lists = [
        (w, z, min(z.values()))
        for w, s in ((VECTOR_WEIGHT, vec), (1 - VECTOR_WEIGHT, bm))
        if (z := _zscores(s))
    ]
    return {
        cid: sum(w * z.get(cid, floor) for w, z, floor in lists)
        for cid in dict.fromkeys(c for _, z, _ in lists for c in z)
    }


def _zscores(scored: Sequence[tuple[str, float]]) -> dict[str, float]:
    if not scored:
        return {}
    xs = [s for _, s in scored]
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))
    return {cid: (s - mean) / sd if sd > 0 else 0.0 for cid, s in scored}


def section_title(heading: str) -> str:
    """The last part of a heading path (``第 8 章 … > 8.5. 如何查出…`` → ``8.5. 如何查出…``)."""
    return heading.rsplit(" > ", 1)[-1].strip()


# The keyword half of hybrid queries runs here; queries of all knowledge bases share it (a thread each
# for a few concurrent queries is plenty: the work is in SQLite or PostgreSQL).
_SEARCH_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="glmkit-kb-bm25")


def _rerank_text(c: ChunkRecord) -> str:
    parts = [c.heading, c.text, c.answer]
    return "\n".join(p for p in parts if p)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
