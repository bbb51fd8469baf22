"""OpenAI-compatible routes: chat completions, completions, embeddings, models."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from glmkit.errors import GlmkitError, InvalidRequestError, ModelNotFoundError, TimeoutError_
from glmkit.runtime.formats.tools import normalize_tools
from glmkit.runtime.messages import messages_from_dicts
from glmkit.safety.guard import Guard, release_piece, request_events
from glmkit.server.openapi import SSE_RESPONSES
from glmkit.server.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from glmkit.server.state import AppState, authorize, get_state
from glmkit.server.streaming import deltas_in_thread
from glmkit.types import (
    CancelToken,
    Constraint,
    Delta,
    FinishDelta,
    LogprobDelta,
    Message,
    NamedTool,
    SamplingParams,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
    ToolCallErrorDelta,
    ToolChoice,
    UsageDelta,
)

router = APIRouter(dependencies=[Depends(authorize)])

# OpenAI's finish reasons; glmkit's own reason is kept in "glmkit_finish_reason"
_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "loop": "length",
    "cancelled": "stop",
    "content_filter": "content_filter",  # the content filter withheld (the rest of) the answer
}


def _screen_messages(guard: Guard, messages: list[Message], events: list[dict[str, Any]]) -> list[Message]:
    """User and tool texts through the content filter (refused, masked or recorded)."""
    out = []
    for i, m in enumerate(messages):
        if m.role in ("user", "observation"):
            text = guard.check_input(m.content, f"messages[{i}].content", events)
            m = m if text == m.content else dataclasses.replace(m, content=text)
        out.append(m)
    return out


def _sampling(body: ChatCompletionRequest | CompletionRequest, **extra: Any) -> SamplingParams:
    max_tokens = body.max_tokens
    if isinstance(body, ChatCompletionRequest) and body.max_completion_tokens is not None:
        max_tokens = body.max_completion_tokens
    return SamplingParams(
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        max_tokens=max_tokens,
        stop=body.stops(),
        repetition_penalty=body.repetition_penalty,
        seed=body.seed,
        **extra,
    )


def _tool_choice(body: ChatCompletionRequest) -> ToolChoice:
    tc = body.tool_choice
    if tc is None:
        return "auto"
    if isinstance(tc, str):
        return tc
    return NamedTool(tc.function.name)


def _constraint(body: ChatCompletionRequest) -> Constraint | None:
    rf = body.response_format
    if rf is None or rf.type == "text":
        return None
    if rf.type == "json_object":
        return Constraint("json_object")
    if rf.json_schema is None or not rf.json_schema.schema_:
        raise InvalidRequestError(
            "response_format json_schema needs json_schema.schema", param="response_format.json_schema"
        )
    return Constraint("json_schema", json.dumps(rf.json_schema.schema_, ensure_ascii=False))


def _logprobs_json(tokens: tuple[TokenLogprob, ...]) -> list[dict[str, Any]]:
    return [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": list(t.bytes),
            "top_logprobs": [{"token": a, "logprob": lp, "bytes": list(b)} for a, lp, b in t.top],
        }
        for t in tokens
    ]


def _tool_call_json(d: ToolCallDelta) -> dict[str, Any]:
    return {
        "index": d.index,
        "id": d.call.id,
        "type": "function",
        "function": {"name": d.call.name, "arguments": d.call.arguments_json()},
    }


async def _first(agen: AsyncIterator[Delta], deadline: float) -> Delta:
    """The first delta, so that request errors (bad schema, context overflow) become an HTTP status before
    any byte of a stream is sent."""
    try:
        async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
            return await anext(agen)
    except TimeoutError:
        raise TimeoutError_(
            "no token within the server's request timeout (the server may be overloaded)"
        ) from None


class _Run:
    """One generation: runs the model's stream on a thread, records metrics, enforces the deadline."""

    def __init__(
        self, state: AppState, request: Request, make: Callable[[CancelToken], Iterator[Delta]]
    ) -> None:
        self.state = state
        self.request = request
        self.cancel = CancelToken()
        self.started = time.monotonic()
        self.deadline = self.started + state.settings.request_timeout
        self.first_token_at: float | None = None
        self._agen: AsyncGenerator[Delta, None] = deltas_in_thread(lambda: make(self.cancel), self.cancel)

    async def start(self) -> Delta:
        self.state.check_capacity()
        first = await _first(self._agen, self.deadline)
        self._note(first)
        return first

    def _note(self, d: Delta) -> None:
        if self.first_token_at is None and isinstance(d, (TextDelta, ToolCallDelta, ToolCallErrorDelta)):
            self.first_token_at = time.monotonic()
            self.state.metrics.ttft.observe(self.first_token_at - self.started)
        elif isinstance(d, UsageDelta):
            self.state.metrics.tokens.labels("prompt").inc(d.prompt_tokens)
            self.state.metrics.tokens.labels("completion").inc(d.completion_tokens)

    async def rest(self) -> AsyncIterator[Delta]:
        try:
            while True:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError_("the request ran past the server's request timeout and was stopped")
                try:
                    async with asyncio.timeout(left):
                        d = await anext(self._agen)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise TimeoutError_(
                        "the request ran past the server's request timeout and was stopped"
                    ) from None
                self._note(d)
                yield d
        finally:
            self.cancel.cancel()
            await self._agen.aclose()

    async def watch_disconnect(self) -> None:
        """For non-streamed replies: a client that hangs up cancels its generation."""
        while not self.cancel.cancelled:
            if await self.request.is_disconnected():
                self.cancel.cancel()
                return
            await asyncio.sleep(0.25)


def _sse(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def _sse_error(e: BaseException) -> bytes:
    err = e if isinstance(e, GlmkitError) else None
    return _sse(
        {
            "error": {
                "message": err.message if err else "internal error while streaming (see the server log)",
                "type": err.type if err else "server_error",
                "param": err.param if err else None,
                "code": err.code if err else "internal_error",
            }
        }
    )


@router.post("/v1/chat/completions", responses=SSE_RESPONSES)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    state = get_state(request)
    model = state.chat_model(body.model)
    messages = messages_from_dicts(body.messages)
    guard, flags = state.safety.guard("chat"), request_events(request.state)
    messages = _screen_messages(guard, messages, flags)
    model = guard.model(model)
    tools = normalize_tools(body.tools or [])
    choice = _tool_choice(body)
    top = body.top_logprobs if body.logprobs else None
    if body.top_logprobs is not None and not body.logprobs:
        raise InvalidRequestError("top_logprobs needs logprobs=true", param="top_logprobs")
    params = _sampling(body, constraint=_constraint(body), logprobs=(top or 0) if body.logprobs else None)
    run = _Run(
        state,
        request,
        lambda cancel: model.stream(messages, tools=tools, params=params, cancel=cancel, tool_choice=choice),
    )
    cid = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    first = await run.start()

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
        c: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, **more}
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model.name,
            "choices": [c],
        }

    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def events() -> AsyncIterator[bytes]:
            yield _sse(chunk({"role": "assistant", "content": ""}))
            pending_lp: list[dict[str, Any]] = []

            async def all_deltas() -> AsyncIterator[Delta]:
                yield first
                async for d in run.rest():
                    yield d

            usage: UsageDelta | None = None
            sf = guard.stream_output()
            try:
                async for d in all_deltas():
                    if isinstance(d, LogprobDelta):
                        pending_lp.extend(_logprobs_json(d.tokens))
                    elif isinstance(d, TextDelta):
                        piece = release_piece(sf, d.text, run.cancel)
                        if piece is None:
                            break
                        if pending_lp and piece:
                            yield _sse(chunk({"content": piece}, logprobs={"content": pending_lp}))
                            pending_lp = []
                        elif piece:
                            yield _sse(chunk({"content": piece}))
                    elif isinstance(d, ToolCallDelta):
                        yield _sse(chunk({"tool_calls": [_tool_call_json(d)]}))
                    elif isinstance(d, ToolCallErrorDelta):
                        piece = release_piece(sf, d.raw, run.cancel)
                        if piece is None:
                            break
                        if piece:
                            yield _sse(chunk({"content": piece}))  # never lose what the model wrote
                    elif isinstance(d, UsageDelta):
                        usage = d
                    elif isinstance(d, FinishDelta):
                        rest = sf.close() if sf is not None else ""
                        if rest:
                            yield _sse(chunk({"content": rest}))
                        if sf is None or not sf.blocked:
                            yield _sse(chunk({}, _FINISH[d.reason], glmkit_finish_reason=d.reason))
                if sf is not None and sf.blocked:
                    yield _sse(chunk({}, "content_filter", glmkit_finish_reason="content_filter"))
                guard.stream_done(sf, flags)
                if include_usage and usage is not None:
                    yield _sse(
                        {
                            "id": cid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model.name,
                            "choices": [],
                            "usage": _usage(usage),
                        }
                    )
            except Exception as e:  # noqa: BLE001 - headers are sent: report in-band, as OpenAI does
                yield _sse_error(e)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)

    watcher = asyncio.create_task(run.watch_disconnect())
    try:
        text, calls, lps = "", [], []
        usage = UsageDelta(0, 0)
        reason = "stop"

        async def all_deltas2() -> AsyncIterator[Delta]:
            yield first
            async for d in run.rest():
                yield d

        async for d in all_deltas2():
            if isinstance(d, TextDelta):
                text += d.text
            elif isinstance(d, ToolCallErrorDelta):
                text += d.raw
            elif isinstance(d, ToolCallDelta):
                calls.append(_tool_call_json(d))
            elif isinstance(d, LogprobDelta):
                lps.extend(_logprobs_json(d.tokens))
            elif isinstance(d, UsageDelta):
                usage = d
            elif isinstance(d, FinishDelta):
                reason = d.reason
    finally:
        watcher.cancel()
    text, withheld = guard.check_output(text, flags)
    if withheld:
        reason = "content_filter"
    message: dict[str, Any] = {"role": "assistant", "content": text if (text or not calls) else None}
    if calls:
        for c in calls:
            c.pop("index", None)
        message["tool_calls"] = calls
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model.name,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _FINISH[reason],
                "glmkit_finish_reason": reason,
                "logprobs": {"content": lps} if body.logprobs else None,
            }
        ],
        "usage": _usage(usage),
    }


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _usage(u: UsageDelta) -> dict[str, int]:
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


@router.post("/v1/completions", responses=SSE_RESPONSES)
async def completions(body: CompletionRequest, request: Request) -> Any:
    state = get_state(request)
    model = state.chat_model(body.model)
    complete = getattr(model, "complete", None)
    if complete is None:
        raise InvalidRequestError(f"model {model.name} does not take raw completions", param="model")
    prompt = body.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise InvalidRequestError(
                "give one prompt per request (a list of exactly one string)", param="prompt"
            )
        prompt = prompt[0]
    if body.suffix:
        raise InvalidRequestError("suffix (fill-in-the-middle) is not supported", param="suffix")
    guard, flags = state.safety.guard("chat"), request_events(request.state)
    prompt = guard.check_input(prompt, "prompt", flags)
    complete = getattr(guard.model(model), "complete", complete)
    params = _sampling(body, logprobs=body.logprobs)
    run = _Run(state, request, lambda cancel: complete(prompt, params=params, cancel=cancel))
    cid = "cmpl-" + secrets.token_hex(12)
    created = int(time.time())
    first = await run.start()

    def obj(text: str, finish: str | None, lp: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "text_completion",
            "created": created,
            "model": model.name,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": lp}],
        }

    def legacy_lp(tokens: list[TokenLogprob]) -> dict[str, Any]:
        return {
            "tokens": [t.token for t in tokens],
            "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [{a: lp for a, lp, _ in t.top} for t in tokens],
            "text_offset": [],
        }

    async def all_deltas() -> AsyncIterator[Delta]:
        yield first
        async for d in run.rest():
            yield d

    if body.stream:

        async def events() -> AsyncIterator[bytes]:
            pending: list[TokenLogprob] = []
            sf = guard.stream_output()
            try:
                if body.echo:
                    yield _sse(obj(prompt, None))
                async for d in all_deltas():
                    if isinstance(d, LogprobDelta):
                        pending.extend(d.tokens)
                    elif isinstance(d, TextDelta):
                        piece = release_piece(sf, d.text, run.cancel)
                        if piece is None:
                            break
                        if piece:
                            yield _sse(obj(piece, None, legacy_lp(pending) if pending else None))
                            pending = []
                    elif isinstance(d, FinishDelta):
                        rest = sf.close() if sf is not None else ""
                        if rest:
                            yield _sse(obj(rest, None))
                        if sf is None or not sf.blocked:
                            yield _sse(obj("", _FINISH[d.reason]))
                if sf is not None and sf.blocked:
                    yield _sse(obj("", "content_filter"))
                guard.stream_done(sf, flags)
            except Exception as e:  # noqa: BLE001 - in-band, headers are sent
                yield _sse_error(e)
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)
    text = prompt if body.echo else ""
    lps: list[TokenLogprob] = []
    usage, reason = UsageDelta(0, 0), "stop"
    async for d in all_deltas():
        if isinstance(d, TextDelta):
            text += d.text
        elif isinstance(d, LogprobDelta):
            lps.extend(d.tokens)
        elif isinstance(d, UsageDelta):
            usage = d
        elif isinstance(d, FinishDelta):
            reason = d.reason
    answer, withheld = guard.check_output(text[len(prompt) :] if body.echo else text, flags)
    if withheld:
        reason = "content_filter"
    text = (prompt if body.echo else "") + answer
    out = obj(text, _FINISH[reason], legacy_lp(lps) if body.logprobs is not None else None)
    out["usage"] = _usage(usage)
    return out


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> Any:
    state = get_state(request)
    embedder = await state.embedder(body.model)
    inputs = [body.input] if isinstance(body.input, str) else body.input
    if any(not isinstance(x, str) for x in inputs):
        raise InvalidRequestError(
            "input must be a string or a list of strings (token ids are not accepted)", param="input"
        )
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise InvalidRequestError(
            f"{embedder.name} gives {embedder.dim} dimensions; dimensions={body.dimensions} is not supported",
            param="dimensions",
        )
    texts = [str(x) for x in inputs]
    vecs = await asyncio.to_thread(embedder.embed, texts, body.input_type)
    n_tokens = await asyncio.to_thread(lambda: sum(embedder.count_tokens(t) for t in texts))
    state.metrics.tokens.labels("embedding").inc(n_tokens)
    data = []
    for i, v in enumerate(vecs):
        emb: Any = (
            base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else [float(x) for x in v]
        )
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {
        "object": "list",
        "data": data,
        "model": embedder.name,
        "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
    }


@router.get("/v1/models")
async def list_models(request: Request) -> Any:
    return {"object": "list", "data": get_state(request).model_cards()}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, request: Request) -> Any:
    state = get_state(request)
    for card in state.model_cards():
        if card["id"] == model_id:
            return card
    known = ", ".join(c["id"] for c in state.model_cards())
    raise ModelNotFoundError(f"model {model_id!r} is not served here; available: {known}", param="model")
