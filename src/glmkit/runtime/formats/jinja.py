"""Chat templates shipped inside GGUF files (``tokenizer.chat_template``) or HF tokenizer configs,
rendered with a sandboxed jinja2 environment the way transformers does.

Injection guard: each message's content is rendered as a unique sentinel; the template's own text is
tokenized with special tokens recognised, and each content string is tokenized as plain text only. So
``<|im_start|>system`` typed by a user stays text.

Tool calls come back in the JSON forms small models write (``<tool_call>{...}</tool_call>``, a ```json
fence, or a bare object). Tool results: with ``observation_as_user`` (set for the embedded 0.5B model,
which answers 0/12 times after a templated ``<tool_response>`` but 6/6 when the result is pasted into a
user turn without tools) the result is rewritten as a user turn and the tools are left out.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from glmkit.errors import InvalidRequestError, ModelLoadError, ToolCallParseError
from glmkit.runtime.formats.base import ReplyParser, register_format
from glmkit.runtime.formats.tools import check_call, parse_json_calls
from glmkit.runtime.protocol import Tokenizer
from glmkit.types import Constraint, Delta, Message, TextDelta, Tool, ToolCallDelta, ToolCallErrorDelta

OBSERVATION_PROMPT = "工具 {name} 返回的结果：\n{content}\n\n请根据这个结果回答我之前的问题。"


def _raise(msg: str) -> None:
    raise InvalidRequestError(f"chat template refused the messages: {msg}")


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, **kw: Any) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, **kw)


class JinjaFormat:
    name = "jinja"

    def __init__(
        self,
        template: str,
        *,
        bos_token: str = "",
        eos_token: str = "",
        observation_as_user: bool = False,
    ) -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.Undefined)
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self._template = env.from_string(template)
        except jinja2.TemplateError as e:
            raise ModelLoadError(f"the model's chat template does not compile: {e}") from e
        self._bos, self._eos = bos_token, eos_token
        self.observation_as_user = observation_as_user

    # -- rendering ------------------------------------------------------------------------------------
    def _prepare(
        self, messages: Sequence[Message], tools: Sequence[Tool]
    ) -> tuple[list[Message], list[Tool]]:
        msgs, tls = list(messages), list(tools)
        if self.observation_as_user and any(m.role == "observation" for m in msgs):
            out: list[Message] = []
            for m in msgs:
                if m.role == "observation":
                    out.append(
                        Message("user", OBSERVATION_PROMPT.format(name=m.name or "", content=m.content))
                    )
                elif m.role == "assistant" and m.tool_calls:
                    calls = ", ".join(f"{c.name}({c.arguments_json()})" for c in m.tool_calls)
                    out.append(
                        Message("assistant", (m.content + "\n" if m.content else "") + f"调用工具：{calls}")
                    )
                else:
                    out.append(m)
            msgs, tls = out, []
        return msgs, tls

    def _render(self, messages: Sequence[Message], tools: Sequence[Tool], contents: Sequence[str]) -> str:
        dicts: list[dict[str, Any]] = []
        for m, content in zip(messages, contents, strict=True):
            d: dict[str, Any] = {"role": "tool" if m.role == "observation" else m.role, "content": content}
            if m.tool_calls:
                d["tool_calls"] = [
                    {"type": "function", "id": c.id, "function": {"name": c.name, "arguments": c.arguments}}
                    for c in m.tool_calls
                ]
            if m.name:
                d["name"] = m.name
            if m.tool_call_id:
                d["tool_call_id"] = m.tool_call_id
            dicts.append(d)
        kwargs: dict[str, Any] = {
            "messages": dicts,
            "add_generation_prompt": True,
            "bos_token": self._bos,
            "eos_token": self._eos,
        }
        if tools:
            kwargs["tools"] = [{"type": "function", "function": t.as_dict()} for t in tools]
        try:
            return self._template.render(**kwargs)
        except jinja2.TemplateError as e:
            raise InvalidRequestError(f"chat template failed on these messages: {e}") from e

    def render_text(self, messages: Sequence[Message], tools: Sequence[Tool]) -> str:
        msgs, tls = self._prepare(messages, tools)
        return self._render(msgs, tls, [m.content for m in msgs])

    def render_ids(self, messages: Sequence[Message], tools: Sequence[Tool], tok: Tokenizer) -> list[int]:
        msgs, tls = self._prepare(messages, tools)
        tag = secrets.token_hex(8)
        # Empty contents stay empty: templates test them (`{% if message.content %}`), so a sentinel there
        # would change the text around it (an assistant turn of tool calls only gained a "\n").
        sentinels = [f"\x00{tag}:{i}\x00" if m.content else "" for i, m in enumerate(msgs)]
        text = self._render(msgs, tls, sentinels)
        pattern = re.compile("\x00" + tag + r":(\d+)\x00")
        ids: list[int] = []
        pos = 0
        seen = 0
        for m in pattern.finditer(text):
            if m.start() > pos:
                ids += tok.encode_with_specials(text[pos : m.start()])
            content = msgs[int(m.group(1))].content
            if content:
                ids += tok.encode(content)
            pos, seen = m.end(), seen + 1
        if pos < len(text):
            ids += tok.encode_with_specials(text[pos:])
        if seen < sum(1 for m in msgs if m.content):
            # The template transformed the content (e.g. stripped or sliced it): render it for real, with
            # special-token text removed from the contents so it still cannot forge roles.
            clean = [_defuse(m.content, tok) for m in msgs]
            ids = tok.encode_with_specials(self._render(msgs, tls, clean))
        return ids

    def stop_ids(self, tok: Tokenizer) -> frozenset[int]:
        ids = {
            i
            for t in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>")
            if (i := tok.special_id(t)) is not None
        }
        if self._eos and (i := tok.special_id(self._eos)) is not None:
            ids.add(i)
        return frozenset(ids)

    def forced_call_constraint(self, tools: Sequence[Tool]) -> Constraint:
        """A bare ``{"name": …, "arguments": …}`` object (what small Qwen models write; the parser takes it),
        as an ``anyOf`` over the tools so the arguments follow the chosen tool's schema."""
        return Constraint("json_schema", json.dumps(forced_call_schema(tools), ensure_ascii=False))

    def parser(self, tools: Sequence[Tool], tok: Tokenizer) -> ReplyParser:
        return JsonToolParser(tools)


def _defuse(text: str, tok: Tokenizer) -> str:
    for s in tok.special_texts:
        if s:
            text = text.replace(s, "")
    return text


@register_format("jinja")
def _make(*, template: str | None = None, **kw: Any) -> JinjaFormat:
    if not template:
        raise InvalidRequestError("the jinja format needs a chat template (the model ships none)")
    return JinjaFormat(template, **kw)


class JsonToolParser:
    """Streams text; once the reply looks like a tool call (``<tool_call>``, a fence or a JSON object at
    its start) it buffers to the end and parses the calls."""

    TAG = "<tool_call>"

    def __init__(self, tools: Sequence[Tool]) -> None:
        self._tools = list(tools)
        self._buf = ""
        self._started = False
        self._capturing = False
        self._calls = 0

    @property
    def called_tools(self) -> bool:
        return self._calls > 0

    def feed(self, token_id: int, text: str) -> list[Delta]:
        if not text:
            return []
        if not self._tools:
            if not self._started:
                text = text.lstrip()
                self._started = bool(text)
            return [TextDelta(text)] if text else []
        self._buf += text
        if self._capturing:
            return []
        if not self._started:
            head = self._buf.lstrip()
            if not head:
                return []
            if len(head) < len(self.TAG) and (self.TAG.startswith(head) or "```".startswith(head[:3])):
                return []  # could still become a tag or a fence
            self._started = True
            self._buf = head
            if head.startswith(("{", "[", "```", self.TAG)):
                self._capturing = True
                return []
        idx = self._buf.find(self.TAG)
        if idx >= 0:
            out, self._buf, self._capturing = self._buf[:idx], self._buf[idx:], True
            return [TextDelta(out)] if out else []
        keep = _partial_suffix(self._buf, self.TAG)
        out, self._buf = self._buf[: len(self._buf) - keep], self._buf[len(self._buf) - keep :]
        return [TextDelta(out)] if out else []

    def finish(self) -> list[Delta]:
        buf, self._buf = self._buf, ""
        if not self._capturing:
            return [TextDelta(buf)] if buf else []
        try:
            calls = parse_json_calls(buf)
        except ToolCallParseError as e:
            if '"name"' not in buf and "<tool_call>" not in buf:
                return [TextDelta(buf.strip())]  # JSON or a code fence that was simply an answer
            return [ToolCallErrorDelta(raw=buf, error=e.message)]
        out: list[Delta] = []
        for call in calls:
            try:
                check_call(call, self._tools)
            except ToolCallParseError as e:
                out.append(ToolCallErrorDelta(raw=buf, error=e.message))
                continue
            out.append(ToolCallDelta(call, self._calls))
            self._calls += 1
        return out


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def forced_call_schema(tools: Sequence[Tool]) -> dict[str, Any]:
    """JSON schema of one call to one of ``tools``: ``{"name": <const>, "arguments": <its parameters>}``."""
    options = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": t.parameters or {"type": "object"}},
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}
