"""Knowledge-base routes: manage knowledge bases and documents, search, and ask with citations.

A knowledge base created as private belongs to the calling API key; other keys see it as missing (404)."""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import Field

from glmkit.apps.qa import QA
from glmkit.errors import PermissionDeniedError
from glmkit.kb.store import Filters, KBRecord
from glmkit.safety.guard import release_piece, request_events
from glmkit.server.openapi import NAME_PATTERN, NON_BLANK, SSE_RESPONSES
from glmkit.server.protocol import StrictBody
from glmkit.server.state import authorize, caller, get_state
from glmkit.server.streaming import deltas_in_thread
from glmkit.types import CancelToken, SamplingParams, TextDelta

router = APIRouter(prefix="/v1/kb", dependencies=[Depends(authorize)], tags=["knowledge base"])


class _Body(StrictBody):
    pass


class CreateKB(_Body):
    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    description: str = Field("", max_length=2000)
    private: bool = False


class SearchBody(_Body):
    query: str = Field(min_length=1, max_length=4000, pattern=NON_BLANK)
    k: int = Field(5, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    rerank: bool = True
    sources: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class AskBody(_Body):
    kb: str | Annotated[list[str], Field(min_length=1, max_length=20)]
    question: str = Field(min_length=1, max_length=4000, pattern=NON_BLANK)
    k: int = Field(4, ge=1, le=20)
    rerank: bool = True
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=4096)


def _kb_json(r: KBRecord) -> dict[str, Any]:
    return {
        "name": r.name,
        "description": r.description,
        "created": r.created,
        "embedder": r.embedder,
        "documents": r.n_documents,
        "chunks": r.n_chunks,
        "private": r.owner is not None,
    }


@router.get("")
async def list_kbs(request: Request) -> Any:
    kbs = get_state(request).kbs
    return {
        "object": "list",
        "data": [_kb_json(r) for r in await asyncio.to_thread(kbs.list_kbs, caller(request))],
    }


@router.post("", status_code=201)
async def create_kb(body: CreateKB, request: Request) -> Any:
    kbs = get_state(request).kbs
    owner = caller(request) if body.private else None
    if body.private and owner is None:
        raise PermissionDeniedError(
            "private knowledge bases need an API key (this server has none)", param="private"
        )
    return _kb_json(await asyncio.to_thread(kbs.create, body.name, body.description, owner))


@router.get("/{name}")
async def describe_kb(name: str, request: Request) -> Any:
    kbs = get_state(request).kbs
    (rec,) = await asyncio.to_thread(kbs.visible, [name], caller(request))
    return _kb_json(rec)


@router.delete("/{name}")
async def delete_kb(name: str, request: Request) -> Any:
    kbs = get_state(request).kbs
    await asyncio.to_thread(kbs.visible, [name], caller(request))
    await asyncio.to_thread(kbs.store.delete_kb, name)
    return {"deleted": name}


@router.get("/{name}/documents")
async def list_documents(name: str, request: Request) -> Any:
    kbs = get_state(request).kbs
    await asyncio.to_thread(kbs.visible, [name], caller(request))
    docs = await asyncio.to_thread(kbs.store.list_documents, name)
    return {"object": "list", "data": [d.__dict__ | {"tags": list(d.tags)} for d in docs]}


_SAFE = re.compile(r"[^\w.\-\u4e00-\u9fff]+")


@router.post("/{name}/documents")
async def add_documents(
    name: str, request: Request, files: Annotated[list[UploadFile], File()], tags: Annotated[str, Form()] = ""
) -> Any:
    """Upload files (multipart ``files``); each is ingested on its own and reported on its own."""
    kbs = get_state(request).kbs
    await asyncio.to_thread(kbs.visible, [name], caller(request))
    with tempfile.TemporaryDirectory(prefix="glmkit-upload-") as tmp:
        paths, names = [], []
        for i, f in enumerate(files):
            base = _SAFE.sub("_", Path(f.filename or f"upload-{i}").name)[:120] or f"upload-{i}"
            p = Path(tmp) / str(i) / base  # one folder per upload: errors name the file as uploaded
            p.parent.mkdir()
            p.write_bytes(await f.read())
            paths.append(p)
            names.append(Path(f.filename or base).name)
        tag_list = [t.strip() for t in tags.split(",") if t.strip()]
        report = await asyncio.to_thread(kbs.add, name, paths, tags=tag_list, source_names=names)
    return {
        "kb": name,
        "files": [f.__dict__ for f in report.files],
        "chunks": report.chunks,
        "seconds": round(report.seconds, 2),
    }


@router.delete("/{name}/documents/{doc:path}")
async def remove_document(name: str, doc: str, request: Request) -> Any:
    kbs = get_state(request).kbs
    await asyncio.to_thread(kbs.visible, [name], caller(request))
    d = await asyncio.to_thread(kbs.store.remove_document, name, doc)
    return {"removed": d.id, "source": d.source}


@router.post("/{name}/search")
async def search(name: str, body: SearchBody, request: Request) -> Any:
    kbs = get_state(request).kbs
    hits = await asyncio.to_thread(
        lambda: kbs.search(
            name.split(","),
            body.query,
            k=body.k,
            mode=body.mode,
            rerank=body.rerank,
            filters=Filters(tuple(body.sources), tuple(body.tags)),
            caller=caller(request),
        )
    )
    return {"object": "list", "data": [h.as_dict() for h in hits]}


@router.post("/ask", name="ask", responses=SSE_RESPONSES)
async def ask(body: AskBody, request: Request) -> Any:
    state = get_state(request)
    names = [body.kb] if isinstance(body.kb, str) else body.kb
    guard, flags = state.safety.guard("kb"), request_events(request.state)
    question = guard.check_input(body.question, "question", flags)
    qa = QA(state.kbs, guard.model(state.chat), min_similarity=state.settings.qa_min_similarity)
    params = SamplingParams(
        temperature=0.2 if body.temperature is None else body.temperature, max_tokens=body.max_tokens or 512
    )
    cancel = CancelToken()
    answer, deltas = await asyncio.to_thread(
        lambda: qa.stream(
            names,
            question,
            k=body.k,
            rerank=body.rerank,
            params=params,
            caller=caller(request),
            cancel=cancel,
        )
    )
    state.check_capacity()
    agen = deltas_in_thread(lambda: deltas, cancel)
    if not body.stream:
        async for _ in agen:
            pass
        out = answer.as_dict()
        out["answer"], withheld = guard.check_output(answer.text, flags)
        if withheld:
            out["finish_reason"] = "content_filter"
        return out

    async def events() -> AsyncIterator[bytes]:
        def ev(obj: dict[str, Any]) -> bytes:
            return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()

        yield ev({"type": "sources", "sources": [c.as_dict() for c in answer.sources]})
        sf, sent = guard.stream_output(), ""
        try:
            async for d in agen:
                if isinstance(d, TextDelta):
                    piece = release_piece(sf, d.text, cancel)
                    if piece is None:
                        break
                    sent += piece
                    if piece:
                        yield ev({"type": "delta", "text": piece})
            rest = sf.close() if sf is not None else ""
            if rest:
                sent += rest
                yield ev({"type": "delta", "text": rest})
            guard.stream_done(sf, flags)
            done = answer.as_dict()
            if sf is not None:
                done["answer"] = sent
                if sf.blocked:
                    done["finish_reason"] = "content_filter"
            yield ev({"type": "done"} | done)
        except Exception as e:  # noqa: BLE001 - in-band after headers
            yield ev({"type": "error", "message": str(e)})
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# -- building the knowledge base with the model: candidates, review, publish -------------------------------
class GenerateBody(_Body):
    per_doc: int = Field(3, ge=1, le=5)
    summaries: bool = True
    redo: bool = False


class EditBody(_Body):
    question: str | None = Field(None, min_length=1, max_length=2000)
    answer: str | None = Field(None, min_length=1, max_length=8000)
    status: Literal["pending", "published", "rejected"] | None = None


def _builder(request: Request) -> Any:
    from glmkit.kb.faq import FAQBuilder, ReviewQueue

    state = get_state(request)
    if state.review_queue is None:
        state.review_queue = ReviewQueue(state.settings.home / "kb" / "review.sqlite3", state.store_key)
    return FAQBuilder(state.kbs, state.review_queue)


@router.get("/{name}/faq")
async def list_candidates(
    name: str, request: Request, status: str | None = None, kind: str | None = None
) -> Any:
    b = _builder(request)
    await asyncio.to_thread(b.kbs.visible, [name], caller(request))
    items = await asyncio.to_thread(b.queue.list, name, status, kind)
    return {"object": "list", "data": [c.as_dict() for c in items]}


@router.post("/{name}/faq/generate")
async def generate_candidates(name: str, body: GenerateBody, request: Request) -> Any:
    b = _builder(request)
    await asyncio.to_thread(b.kbs.visible, [name], caller(request))
    model = get_state(request).chat
    made = await asyncio.to_thread(
        lambda: b.generate(name, model, per_doc=body.per_doc, summaries=body.summaries, redo=body.redo)
    )
    return {"object": "list", "data": [c.as_dict() for c in made]}


@router.patch("/{name}/faq/{cid}")
async def edit_candidate(name: str, cid: str, body: EditBody, request: Request) -> Any:
    b = _builder(request)
    await asyncio.to_thread(b.kbs.visible, [name], caller(request))
    was = await asyncio.to_thread(b.queue.get, name, cid)
    c = await asyncio.to_thread(
        lambda: b.queue.update(name, cid, question=body.question, answer=body.answer, status=body.status)
    )
    if was.status == "published" or c.status == "published":
        await asyncio.to_thread(b.rebuild, name)  # live entries follow their edits
    return c.as_dict()


class PublishBody(_Body):
    ids: list[str] | None = None  # None: every pending FAQ candidate


@router.post("/{name}/faq/publish")
async def publish_candidates(name: str, body: PublishBody, request: Request) -> Any:
    b = _builder(request)
    await asyncio.to_thread(b.kbs.visible, [name], caller(request))
    live = await asyncio.to_thread(b.publish, name, body.ids)
    return {"published": live}
