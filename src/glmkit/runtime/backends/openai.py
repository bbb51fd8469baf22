"""A remote OpenAI-compatible endpoint (vLLM, Zhipu's API, Ollama, llama-cpp-python's server).

Two modes:
- chat (default): ``POST /chat/completions`` with streaming; the server formats the prompt and returns
  ``tool_calls`` itself.
- completions (``chat_format`` given, e.g. ``chatglm3``): glmkit renders the prompt with its own format
  and sends it to ``POST /completions``, then parses the reply (tool calls included) itself — for servers
  whose ChatGLM3 chat template or tool parsing is missing or wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from glmkit.errors import BackendError, GlmkitError, InvalidRequestError, ModelNotFoundError
from glmkit.runtime.chat import select_tools, validate_messages
from glmkit.runtime.formats.base import ChatFormat, get_format
from glmkit.runtime.formats.chatglm3 import SPECIAL_TOKENS
from glmkit.types import (
    CancelToken,
    Delta,
    FinishDelta,
    FinishReason,
    Message,
    NamedTool,
    SamplingParams,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallErrorDelta,
    ToolChoice,
    UsageDelta,
)

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


class _TextOnlyTokenizer:
    """Remote text has no ids; the format's parser only needs the special ids to exist."""

    def encode(self, text: str) -> list[int]:
        return []

    def encode_with_specials(self, text: str) -> list[int]:
        return []

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return b""

    def special_id(self, token: str) -> int | None:
        return SPECIAL_TOKENS.get(token, -2)

    @property
    def special_texts(self) -> Sequence[str]:
        return list(SPECIAL_TOKENS)

    def is_eog(self, token_id: int) -> bool:
        return False


def message_to_openai(m: Message) -> dict[str, Any]:
    if m.role == "observation":
        d: dict[str, Any] = {"role": "tool", "content": m.content, "tool_call_id": m.tool_call_id or ""}
        if m.name:
            d["name"] = m.name
        return d
    d = {"role": m.role, "content": m.content}
    if m.tool_calls:
        d["tool_calls"] = [
            {
                "id": c.id or f"call_{i}",
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments_json()},
            }
            for i, c in enumerate(m.tool_calls)
        ]
    return d


class OpenAIChatModel:
    remote = True  # what it is sent leaves this machine (glmkit.safety masks PII for such models)

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        chat_format: str | None = None,
        timeout: float = 600.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = model
        self.base_url = base_url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self.format: ChatFormat | None = get_format(chat_format) if chat_format else None

    def close(self) -> None:
        self._client.close()

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] = (),
        params: SamplingParams | None = None,
        cancel: CancelToken | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> Iterator[Delta]:
        validate_messages(messages)
        s = (params or SamplingParams()).resolved()
        tools = select_tools(tools, tool_choice)
        body: dict[str, Any] = {
            "model": self.name,
            "stream": True,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
        }
        if s.stop:
            body["stop"] = list(s.stop)
        if s.repetition_penalty != 1.0:
            body["repetition_penalty"] = s.repetition_penalty  # vLLM / llama.cpp extension
        if self.format is None:
            body["messages"] = [message_to_openai(m) for m in messages]
            body["stream_options"] = {"include_usage": True}
            if tools:
                body["tools"] = [{"type": "function", "function": t.as_dict()} for t in tools]
                if isinstance(tool_choice, NamedTool):
                    body["tool_choice"] = {"type": "function", "function": {"name": tool_choice.name}}
                elif tool_choice == "required":
                    body["tool_choice"] = "required"
            c = s.constraint
            if c is not None and c.kind == "json_object":
                body["response_format"] = {"type": "json_object"}
            elif c is not None and c.kind == "json_schema":
                schema = json.loads(c.value)
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "reply", "schema": schema},
                }
            return self._chat(body, cancel)
        body["prompt"] = self.format.render_text(messages, tools)
        body["stop"] = [*body.get("stop", []), "<|user|>", "<|observation|>"]
        body["stream_options"] = {"include_usage": True}
        return self._completions(body, tools, cancel)

    def _events(
        self, path: str, body: dict[str, Any], cancel: CancelToken | None
    ) -> Iterator[dict[str, Any]]:
        try:
            with self._client.stream("POST", path, json=body) as r:
                if r.status_code >= 400:
                    r.read()
                    raise _http_error(r)
                for line in r.iter_lines():
                    if cancel is not None and cancel.cancelled:
                        return
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = json.loads(data)
                    except json.JSONDecodeError as e:
                        raise BackendError(
                            f"{self.base_url}{path} sent a malformed SSE event: {data[:200]!r}"
                        ) from e
                    if isinstance(event, dict) and "error" in event:
                        raise BackendError(f"{self.base_url}{path} reported: {event['error']}")
                    if isinstance(event, dict):
                        yield event
        except httpx.HTTPError as e:
            raise BackendError(f"cannot reach {self.base_url}{path}: {e}") from e

    def _chat(self, body: dict[str, Any], cancel: CancelToken | None) -> Iterator[Delta]:
        reason: FinishReason = "stop"
        usage = UsageDelta(0, 0)
        calls: dict[int, dict[str, str]] = {}
        for ev in self._events("/chat/completions", body, cancel):
            if ev.get("usage"):
                u = ev["usage"]
                usage = UsageDelta(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
            for ch in ev.get("choices") or []:
                delta = ch.get("delta") or {}
                if delta.get("content"):
                    yield TextDelta(delta["content"])
                for tc in delta.get("tool_calls") or []:
                    slot = calls.setdefault(
                        int(tc.get("index", len(calls))), {"id": "", "name": "", "arguments": ""}
                    )
                    fn = tc.get("function") or {}
                    slot["id"] = tc.get("id") or slot["id"]
                    slot["name"] += fn.get("name") or ""
                    slot["arguments"] += fn.get("arguments") or ""
                if ch.get("finish_reason"):
                    reason = _FINISH.get(ch["finish_reason"], "stop")
        for i, c in sorted(calls.items()):
            try:
                args = json.loads(c["arguments"]) if c["arguments"].strip() else {}
                if not isinstance(args, dict):
                    raise ValueError("arguments are not a JSON object")
                yield ToolCallDelta(ToolCall(c["name"], args, c["id"]), i)
            except ValueError as e:
                yield ToolCallErrorDelta(raw=c["arguments"], error=f"arguments of {c['name']!r}: {e}")
        if cancel is not None and cancel.cancelled:
            reason = "cancelled"
        yield usage
        yield FinishDelta(reason)

    def _completions(
        self, body: dict[str, Any], tools: Sequence[Tool], cancel: CancelToken | None
    ) -> Iterator[Delta]:
        assert self.format is not None
        parser = self.format.parser(tools, _TextOnlyTokenizer())
        reason: FinishReason = "stop"
        usage = UsageDelta(0, 0)
        for ev in self._events("/completions", body, cancel):
            if ev.get("usage"):
                u = ev["usage"]
                usage = UsageDelta(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
            for ch in ev.get("choices") or []:
                if ch.get("text"):
                    yield from parser.feed(-1, ch["text"])
                if ch.get("finish_reason"):
                    reason = _FINISH.get(ch["finish_reason"], "stop")
        yield from parser.finish()
        if cancel is not None and cancel.cancelled:
            reason = "cancelled"
        elif reason == "stop" and parser.called_tools:
            reason = "tool_calls"
        yield usage
        yield FinishDelta(reason)


def _http_error(r: httpx.Response) -> GlmkitError:
    try:
        detail = r.json()
        msg = detail.get("error", {}).get("message") if isinstance(detail.get("error"), dict) else str(detail)
    except (json.JSONDecodeError, AttributeError):
        msg = r.text[:300]
    text = f"{r.request.url} answered {r.status_code}: {msg}"
    if r.status_code == 404:
        return ModelNotFoundError(text)
    if 400 <= r.status_code < 500:
        return InvalidRequestError(text)
    return BackendError(text)
