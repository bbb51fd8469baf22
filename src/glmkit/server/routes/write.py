"""Summarize and generate routes.

- ``POST /v1/summarize``: JSON text in; with ``stream`` the answer is SSE — ``progress`` events while the
  pieces are summarised, ``delta`` events for the final summary, then ``done`` with the statistics.
- ``POST /v1/summarize/file``: one uploaded file of any type the knowledge base reads (multipart ``file``).
- ``GET /v1/generate/templates`` and ``POST /v1/generate``: a template kind, a topic and the controls; the
  answer carries the check report (``ok``, ``problems``, ``attempts``)."""

from __future__ import annotations

import asyncio
import json
import queue
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import Field

from glmkit.apps.generate import Generator, load_templates
from glmkit.apps.summarize import MAX_LLM_INPUT_CHARS, Summarizer, check_text, extractive
from glmkit.errors import InvalidRequestError
from glmkit.safety.guard import release_piece, request_events
from glmkit.server.openapi import NON_BLANK, SSE_RESPONSES
from glmkit.server.protocol import StrictBody
from glmkit.server.state import authorize, get_state
from glmkit.server.streaming import deltas_in_thread
from glmkit.types import CancelToken, TextDelta

router = APIRouter(dependencies=[Depends(authorize)], tags=["summarize and generate"])


class _Body(StrictBody):
    pass


class SummarizeOptions(_Body):
    mode: Literal["news", "doc", "paper"] = "doc"
    max_chars: int | None = Field(None, ge=5, le=5000)
    sentences: int | None = Field(None, ge=1, le=50)
    language: str | None = Field(None, min_length=1, max_length=40)
    strategy: Literal["map_reduce", "refine"] = "map_reduce"
    extractive: bool = False
    stream: bool = False


class SummarizeBody(SummarizeOptions):
    text: str = Field(min_length=1, max_length=4_000_000, pattern=NON_BLANK)


class GenerateBody(_Body):
    kind: str = Field(min_length=1, max_length=32, description="a template name: GET /v1/generate/templates")
    topic: str = Field(min_length=1, max_length=2000, pattern=NON_BLANK)
    form: str | None = Field(None, max_length=8)
    keywords: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=64)
    style: str | None = Field(None, max_length=200)
    audience: str | None = Field(None, max_length=200)
    min_chars: int | None = Field(None, ge=1, le=20000)
    max_chars: int | None = Field(None, ge=1, le=20000)
    retries: int = Field(3, ge=0, le=10)
    temperature: float = Field(0.8, ge=0, le=2)
    seed: int | None = Field(None, ge=0, le=2**53 - 1)


def _templates(request: Request) -> Any:
    return load_templates(get_state(request).settings.home / "templates")


async def _summarize(text: str, opts: SummarizeOptions, request: Request) -> Any:
    guard, flags = get_state(request).safety.guard("write"), request_events(request.state)
    text = await asyncio.to_thread(guard.check_input, text, "text", flags)
    if opts.extractive:
        summary = await asyncio.to_thread(extractive, text, opts.sentences or 3)
        summary, withheld = guard.check_output(summary, flags)
        picked = {"summary": summary, "method": "extractive", "mode": opts.mode, "input_chars": len(text)}
        if withheld:
            picked["finish_reason"] = "content_filter"
        if not opts.stream:
            return picked

        async def once() -> AsyncIterator[bytes]:
            yield _ev({"type": "delta", "text": summary})
            yield _ev({"type": "done"} | picked)
            yield b"data: [DONE]\n\n"

        return _sse(once())
    check_text(text, MAX_LLM_INPUT_CHARS)  # bad input is an HTTP error, before any stream starts
    state = get_state(request)
    state.check_capacity()
    cancel = CancelToken()
    summarizer = Summarizer(guard.model(state.chat), concurrency=max(1, min(4, state.settings.parallel // 2)))
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    box: dict[str, Any] = {}
    end = object()

    started = time.monotonic()

    def work() -> None:
        try:
            summary, deltas = summarizer.stream(
                text,
                mode=opts.mode,
                max_chars=opts.max_chars,
                sentences=opts.sentences,
                language=opts.language,
                strategy=opts.strategy,
                progress=lambda d, t, stage: events.put(
                    {"type": "progress", "done": d, "total": t, "stage": stage} | _timing(started, d, t)
                ),
                cancel=cancel,
            )
            box["summary"] = summary
            for d in deltas:
                events.put(d)
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            events.put(e)
        finally:
            events.put(end)

    def make() -> Iterator[Any]:
        threading.Thread(target=work, name="glmkit-summarize", daemon=True).start()
        while (item := events.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item

    agen = deltas_in_thread(cast("Any", make), cancel)

    def result() -> dict[str, Any]:
        s = box["summary"]
        out: dict[str, Any] = {"summary": s.text} | s.as_dict()
        return out

    if not opts.stream:
        async for _ in agen:
            pass
        out = result()
        out["summary"], withheld = guard.check_output(out["summary"], flags)
        if withheld:
            out["finish_reason"] = "content_filter"
        return out

    async def stream() -> AsyncIterator[bytes]:
        sf, sent = guard.stream_output(), ""
        try:
            async for item in agen:
                if isinstance(item, dict):
                    yield _ev(item)
                elif isinstance(item, TextDelta):
                    piece = release_piece(sf, item.text, cancel)
                    if piece is None:
                        break
                    sent += piece
                    if piece:
                        yield _ev({"type": "delta", "text": piece})
            rest = sf.close() if sf is not None else ""
            if rest:
                sent += rest
                yield _ev({"type": "delta", "text": rest})
            guard.stream_done(sf, flags)
            if sf is not None and sf.blocked:
                yield _ev({"type": "done", "summary": sent, "finish_reason": "content_filter"})
            else:
                yield _ev({"type": "done"} | result() | ({"summary": sent} if sf is not None else {}))
        except Exception as e:  # noqa: BLE001 - in-band after the headers went out
            yield _ev({"type": "error", "message": getattr(e, "message", str(e))})
        yield b"data: [DONE]\n\n"

    return _sse(stream())


def _timing(started: float, done: int, total: int) -> dict[str, float]:
    """Seconds so far and, once a call is done, the seconds left at the rate so far."""
    elapsed = time.monotonic() - started
    out = {"elapsed_s": round(elapsed, 1)}
    if 0 < done < total:
        out["eta_s"] = round(elapsed / done * (total - done), 1)
    return out


def _ev(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def _sse(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.post("/v1/summarize", responses=SSE_RESPONSES)
async def summarize(body: SummarizeBody, request: Request) -> Any:
    return await _summarize(body.text, body, request)


@router.post("/v1/summarize/file", responses=SSE_RESPONSES)
async def summarize_file(
    request: Request,
    file: Annotated[UploadFile, File()],
    options: Annotated[str, Form(description="SummarizeOptions as JSON")] = "{}",
) -> Any:
    """One uploaded file (txt, md, html, pdf, docx, pptx, csv, xlsx, json, jsonl)."""
    from glmkit.apps.batch import read_document
    from glmkit.server.routes.kb import _SAFE

    try:
        opts = SummarizeOptions.model_validate_json(options)
    except ValueError as e:
        raise InvalidRequestError(f"options: {e}", param="options") from None
    name = _SAFE.sub("_", Path(file.filename or "upload.txt").name)[:120] or "upload.txt"
    data = await file.read()
    with tempfile.TemporaryDirectory(prefix="glmkit-summarize-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        text = await asyncio.to_thread(read_document, path)
    return await _summarize(text, opts, request)


@router.get("/v1/generate/templates")
async def templates(request: Request) -> Any:
    found = await asyncio.to_thread(_templates, request)
    return {
        "object": "list",
        "data": [
            {"name": n, "description": t.description, "takes_form": "{form}" in t.prompt}
            for n, t in found.items()
        ],
    }


@router.post("/v1/generate")
async def generate(body: GenerateBody, request: Request) -> Any:
    state = get_state(request)
    guard, flags = state.safety.guard("write"), request_events(request.state)
    topic = guard.check_input(body.topic, "topic", flags)
    keywords = [guard.check_input(k, f"keywords[{i}]", flags) for i, k in enumerate(body.keywords)]
    style = guard.check_input(body.style, "style", flags) if body.style else body.style
    audience = guard.check_input(body.audience, "audience", flags) if body.audience else body.audience
    state.check_capacity()
    gen = Generator(guard.model(state.chat), await asyncio.to_thread(_templates, request))
    g = await asyncio.to_thread(
        gen.generate,
        body.kind,
        topic,
        form=body.form,
        keywords=keywords,
        style=style,
        audience=audience,
        min_chars=body.min_chars,
        max_chars=body.max_chars,
        retries=body.retries,
        temperature=body.temperature,
        seed=body.seed,
    )
    out = g.as_dict()
    out["text"], withheld = guard.check_output(g.text, flags)
    if withheld:
        out["ok"] = False
        out["problems"] = [
            *g.problems,
            f"the content filter withheld the text (category: {', '.join(withheld)})",
        ]
    return out
