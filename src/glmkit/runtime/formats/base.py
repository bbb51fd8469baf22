"""The chat-format seam and its registry.

A ``ChatFormat`` renders messages (+ tools) into prompt token ids for a tokenizer, spells the same prompt
as readable text, names the stop ids, and makes a ``ReplyParser`` that turns generated tokens back into
typed deltas (text, tool calls).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from glmkit.errors import InvalidRequestError
from glmkit.runtime.protocol import Tokenizer
from glmkit.types import Constraint, Delta, Message, Tool


class ReplyParser(Protocol):
    def feed(self, token_id: int, text: str) -> list[Delta]:
        """Take one generated token and the text it completed (``""`` for control tokens)."""
        ...

    def finish(self) -> list[Delta]:
        """Flush at the end of generation."""
        ...

    @property
    def called_tools(self) -> bool: ...


class ChatFormat(Protocol):
    name: str

    def render_ids(self, messages: Sequence[Message], tools: Sequence[Tool], tok: Tokenizer) -> list[int]: ...

    def render_text(self, messages: Sequence[Message], tools: Sequence[Tool]) -> str: ...

    def stop_ids(self, tok: Tokenizer) -> frozenset[int]: ...

    def parser(self, tools: Sequence[Tool], tok: Tokenizer) -> ReplyParser: ...

    def forced_call_constraint(self, tools: Sequence[Tool]) -> Constraint:
        """A constraint under which the whole reply is one call of one of ``tools`` in this format."""
        ...


FormatFactory = Callable[..., ChatFormat]
_FORMATS: dict[str, FormatFactory] = {}


def register_format(name: str) -> Callable[[FormatFactory], FormatFactory]:
    def deco(factory: FormatFactory) -> FormatFactory:
        _FORMATS[name] = factory
        return factory

    return deco


def get_format(name: str, **kwargs: object) -> ChatFormat:
    try:
        factory = _FORMATS[name]
    except KeyError:
        raise InvalidRequestError(
            f"unknown chat format {name!r}; known: {', '.join(sorted(_FORMATS))}", param="format"
        ) from None
    return factory(**kwargs)


def format_names() -> list[str]:
    return sorted(_FORMATS)


class IncrementalDecoder:
    """Turns ids into text without splitting a multi-byte UTF-8 character across deltas."""

    def __init__(self, tok: Tokenizer) -> None:
        self._tok = tok
        self._pending = b""

    def feed(self, token_id: int) -> str:
        self._pending += self._tok.decode_bytes([token_id])
        try:
            text = self._pending.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start > 0 and len(self._pending) - e.start < 4 and e.reason == "unexpected end of data":
                text = self._pending[: e.start].decode("utf-8")
                self._pending = self._pending[e.start :]
                return text
            if len(self._pending) - e.start < 4 and e.reason == "unexpected end of data":
                return ""  # wait for the rest of the character
            text = self._pending.decode("utf-8", errors="replace")
        self._pending = b""
        return text

    def flush(self) -> str:
        text = self._pending.decode("utf-8", errors="replace")
        self._pending = b""
        return text
