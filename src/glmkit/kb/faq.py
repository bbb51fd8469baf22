"""Building a knowledge base with the model (知识库建设): candidate FAQ entries and document summaries
are generated from ingested documents, reviewed by a person (edit, publish, reject), and published
entries become FAQ chunks of the knowledge base (the document ``faq:published``), which retrieval and
the customer-service bot answer from directly.

Candidates live in ``$GLMKIT_HOME/kb/review.sqlite3`` whatever the chunk store is; generation asks the
model for JSON under a schema grammar, so its output always parses."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from glmkit.errors import InvalidRequestError
from glmkit.kb.service import KnowledgeBases
from glmkit.kb.store import DocRecord, KBNotFoundError, NewChunk
from glmkit.kb.text import tokens
from glmkit.runtime.chat import collect
from glmkit.runtime.protocol import ChatModel
from glmkit.storage.crypto import StoreKey, connect
from glmkit.types import Constraint, Message, SamplingParams

Status = Literal["pending", "published", "rejected"]
PUBLISHED_SOURCE = "faq:published"
MAX_DOC_CHARS = 1800  # what one generation call reads of a document

FAQ_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
        "required": ["question", "answer"],
    },
    "minItems": 1,
    "maxItems": 5,
}


@dataclass(frozen=True)
class Candidate:
    id: str
    kb: str
    kind: Literal["faq", "summary"]
    question: str  # for a summary: the document's title
    answer: str  # for a summary: the summary
    source: str
    status: Status
    created: float
    updated: float

    def as_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


class ReviewQueue:
    def __init__(self, path: Path, key: StoreKey | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(path, key)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS candidates (id TEXT PRIMARY KEY, kb TEXT NOT NULL,"
            " kind TEXT NOT NULL,"
            " question TEXT NOT NULL, answer TEXT NOT NULL, source TEXT NOT NULL, status TEXT NOT NULL,"
            " created REAL NOT NULL, updated REAL NOT NULL)"
        )
        self._lock = threading.Lock()

    def add(
        self, kb: str, kind: Literal["faq", "summary"], question: str, answer: str, source: str
    ) -> Candidate:
        now = time.time()
        c = Candidate(
            secrets.token_hex(5), kb, kind, question.strip(), answer.strip(), source, "pending", now, now
        )
        with self._lock:
            self._db.execute("INSERT INTO candidates VALUES (?,?,?,?,?,?,?,?,?)", tuple(c.__dict__.values()))
        return c

    def list(self, kb: str, status: Status | None = None, kind: str | None = None) -> list[Candidate]:
        q = "SELECT * FROM candidates WHERE kb = ?"
        args: list[object] = [kb]
        if status:
            q += " AND status = ?"
            args.append(status)
        if kind:
            q += " AND kind = ?"
            args.append(kind)
        with self._lock:
            rows = self._db.execute(q + " ORDER BY created, id", args).fetchall()
        return [Candidate(*r) for r in rows]

    def get(self, kb: str, cid: str) -> Candidate:
        with self._lock:
            row = self._db.execute("SELECT * FROM candidates WHERE kb = ? AND id = ?", (kb, cid)).fetchone()
        if row is None:
            raise KBNotFoundError(f"knowledge base {kb!r} has no candidate {cid!r}", param="id")
        return Candidate(*row)

    def update(
        self,
        kb: str,
        cid: str,
        *,
        question: str | None = None,
        answer: str | None = None,
        status: Status | None = None,
    ) -> Candidate:
        c = self.get(kb, cid)
        q = c.question if question is None else question.strip()
        a = c.answer if answer is None else answer.strip()
        if not q or not a:
            raise InvalidRequestError(
                "question and answer must not be empty", param="question" if not q else "answer"
            )
        with self._lock:
            self._db.execute(
                "UPDATE candidates SET question = ?, answer = ?, status = ?, updated = ? WHERE id = ?",
                (q, a, status or c.status, time.time(), cid),
            )
        return self.get(kb, cid)

    def sources_done(self, kb: str) -> set[str]:
        with self._lock:
            return {
                r[0] for r in self._db.execute("SELECT DISTINCT source FROM candidates WHERE kb = ?", (kb,))
            }

    def close(self) -> None:
        self._db.close()


class FAQBuilder:
    def __init__(self, kbs: KnowledgeBases, queue: ReviewQueue) -> None:
        self.kbs = kbs
        self.queue = queue

    def generate(
        self,
        kb: str,
        model: ChatModel,
        *,
        per_doc: int = 3,
        summaries: bool = True,
        redo: bool = False,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> list[Candidate]:
        """Candidates for every document not yet processed (``redo`` processes all again)."""
        if not 1 <= per_doc <= 5:
            raise InvalidRequestError(f"per_doc must be within [1, 5], got {per_doc}", param="per_doc")
        docs = [d for d in self.kbs.store.list_documents(kb) if d.source != PUBLISHED_SOURCE]
        done = set() if redo else self.queue.sources_done(kb)
        todo = [d for d in docs if d.source not in done]
        out: list[Candidate] = []
        for i, d in enumerate(todo):
            if progress is not None:
                progress(i, len(todo), d.source)
            text = self._document_text(d)
            if not text.strip():
                continue
            for qa in self._faq(model, text, per_doc):
                out.append(self.queue.add(kb, "faq", qa["question"], qa["answer"], d.source))
            if summaries:
                s = self._summary(model, text)
                if s:
                    out.append(self.queue.add(kb, "summary", d.title or Path(d.source).name, s, d.source))
        if progress is not None:
            progress(len(todo), len(todo), "")
        return out

    def _document_text(self, d: DocRecord) -> str:
        chunks = self.kbs.store.chunks([f"{d.id}-{i}" for i in range(d.n_chunks)])
        text = ""
        for c in chunks:
            piece = c.text if not c.answer else f"{c.text}\n{c.answer}"
            if len(text) + len(piece) > MAX_DOC_CHARS:
                break
            text += piece + "\n"
        return text

    def _faq(self, model: ChatModel, text: str, n: int) -> list[dict[str, str]]:
        prompt = (
            f"阅读下面的资料，写出{n}个用户可能会问的问题，并根据资料给出答案。"
            '用 JSON 数组输出：[{"question": "问题", "answer": "答案"}]\n\n资料：\n' + text
        )
        schema = dict(FAQ_SCHEMA, maxItems=n)
        params = SamplingParams(
            temperature=0, max_tokens=600, constraint=Constraint("json_schema", json.dumps(schema))
        )
        res = collect(model.stream([Message("user", prompt)], params=params))
        try:
            items = json.loads(res.text)
        except json.JSONDecodeError:
            return []  # a backend without grammar support wrote something else: nothing to review
        seen: set[str] = set()
        out = []
        for it in items if isinstance(items, list) else []:
            q, a = str(it.get("question", "")).strip(), str(it.get("answer", "")).strip()
            if len(q) >= 4 and len(a) >= 2 and q not in seen:
                seen.add(q)
                out.append({"question": q, "answer": a})
        return out

    def _summary(self, model: ChatModel, text: str) -> str:
        prompt = "用两三句话概括下面这份资料的主要内容：\n\n" + text
        res = collect(
            model.stream([Message("user", prompt)], params=SamplingParams(temperature=0, max_tokens=200))
        )
        return res.text.strip()

    def publish(self, kb: str, ids: Sequence[str] | None = None) -> int:
        """Mark candidates published (``None``: every pending FAQ candidate) and rebuild the published
        FAQ document from all published entries, in one store transaction. Returns how many are live."""
        targets = (
            self.queue.list(kb, "pending", "faq") if ids is None else [self.queue.get(kb, i) for i in ids]
        )
        for c in targets:
            if c.kind != "faq":
                raise InvalidRequestError(
                    f"candidate {c.id} is a summary; only FAQ entries are published", param="id"
                )
            self.queue.update(kb, c.id, status="published")
        return self.rebuild(kb)

    def unpublish(self, kb: str, cid: str) -> int:
        self.queue.update(kb, cid, status="rejected")
        return self.rebuild(kb)

    def rebuild(self, kb: str) -> int:
        live = self.queue.list(kb, "published", "faq")
        if not live:
            if self.kbs.store.find_document(kb, PUBLISHED_SOURCE) is not None:
                self.kbs.store.remove_document(kb, PUBLISHED_SOURCE)
            return 0
        vecs = self.kbs.embedder.embed([f"{c.question}\n{c.answer}" for c in live], "passage")
        chunks = [
            NewChunk(
                c.question,
                f"FAQ {c.id}",
                "",
                "faq",
                c.answer,
                " ".join(tokens(f"{c.question} {c.answer}")),
                v,
            )
            for c, v in zip(live, vecs, strict=True)
        ]
        digest = hashlib.sha256(
            json.dumps([[c.id, c.question, c.answer] for c in live], ensure_ascii=False).encode()
        ).hexdigest()
        self.kbs.store.replace_document(
            DocRecord(
                "", kb, PUBLISHED_SOURCE, digest, 0, time.time(), len(chunks), ("faq",), "已发布的常见问题"
            ),
            chunks,
        )
        return len(live)
