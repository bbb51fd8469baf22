"""OpenAI-style message dicts ↔ glmkit ``Message`` values, validated with errors that name the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from glmkit.errors import InvalidRequestError
from glmkit.types import ROLES, Message, ToolCall


def messages_from_dicts(raw: Any) -> list[Message]:
    if not isinstance(raw, list):
        raise InvalidRequestError("messages must be a JSON list of {role, content} objects", param="messages")
    out: list[Message] = []
    for i, d in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(d, Mapping):
            raise InvalidRequestError(f"{where} must be an object, got {type(d).__name__}", param=where)
        role = d.get("role")
        if role == "tool":
            role = "observation"
        if role not in ROLES:
            raise InvalidRequestError(
                f"{where}.role must be one of system, user, assistant, tool/observation; got {role!r}",
                param=f"{where}.role",
            )
        content = d.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):  # OpenAI content parts: keep the text parts
            texts = []
            for j, part in enumerate(content):
                if (
                    not isinstance(part, Mapping)
                    or part.get("type") != "text"
                    or not isinstance(part.get("text"), str)
                ):
                    raise InvalidRequestError(
                        f"{where}.content[{j}] must be a text part {{type: text, text: ...}}",
                        param=f"{where}.content",
                    )
                texts.append(part["text"])
            content = "".join(texts)
        if not isinstance(content, str):
            raise InvalidRequestError(f"{where}.content must be a string", param=f"{where}.content")
        metadata = d.get("metadata", "")
        if not isinstance(metadata, str) or "\n" in metadata:
            raise InvalidRequestError(
                f"{where}.metadata must be a one-line string", param=f"{where}.metadata"
            )
        calls = tuple(_tool_calls(d.get("tool_calls"), where)) if role == "assistant" else ()
        name = d.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidRequestError(f"{where}.name must be a string", param=f"{where}.name")
        tcid = d.get("tool_call_id")
        if tcid is not None and not isinstance(tcid, str):
            raise InvalidRequestError(f"{where}.tool_call_id must be a string", param=f"{where}.tool_call_id")
        out.append(Message(role, content, metadata, calls, name, tcid))
    return out


def _tool_calls(raw: Any, where: str) -> list[ToolCall]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequestError(f"{where}.tool_calls must be a list", param=f"{where}.tool_calls")
    calls = []
    for j, c in enumerate(raw):
        w = f"{where}.tool_calls[{j}]"
        fn = c.get("function") if isinstance(c, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise InvalidRequestError(
                f"{w} must be {{type: function, function: {{name, arguments}}}}", param=w
            )
        args = fn.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                raise InvalidRequestError(f"{w}.function.arguments is not valid JSON: {e}", param=w) from e
        if not isinstance(args, Mapping):
            raise InvalidRequestError(f"{w}.function.arguments must be a JSON object", param=w)
        calls.append(ToolCall(fn["name"], dict(args), str(c.get("id") or "")))
    return calls


def message_to_dict(m: Message) -> dict[str, Any]:
    d: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.metadata:
        d["metadata"] = m.metadata
    if m.tool_calls:
        d["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.name:
        d["name"] = m.name
    if m.tool_call_id:
        d["tool_call_id"] = m.tool_call_id
    return d
