"""A chat model wrapper that masks PII in every message before the wrapped model sees it.

Used for remote models (``openai:`` backends) by default: phone numbers, ID numbers, bank cards, e-mail
addresses, landlines and street addresses leave this machine as ``[手机号]``, ``[身份证号]`` … The
message contents of every role are masked (a system prompt may carry retrieved documents, an assistant
turn may echo the customer); tool-call arguments are passed as they are, so tool round trips still work.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from glmkit.data.mask import Masker
from glmkit.runtime.protocol import ChatModel
from glmkit.types import CancelToken, Delta, Message, SamplingParams, Tool, ToolChoice


def is_remote(model: object) -> bool:
    """True for a model that sends text off this machine: one that says so with ``remote = True`` (the
    ``openai:`` backend does), so this package needs no backend, only the ``ChatModel`` seam."""
    return getattr(model, "remote", False) is True


class MaskingChatModel:
    """``inner`` with PII masked in what it is sent; everything else is passed through."""

    def __init__(self, inner: ChatModel, masker: Masker | None = None) -> None:
        self.inner = inner
        self.masker = masker or Masker()
        self.name = inner.name

    def mask(self, text: str) -> str:
        return self.masker.mask(text)[0] if text else text

    def masked_messages(self, messages: Sequence[Message]) -> list[Message]:
        return [dataclasses.replace(m, content=self.mask(m.content)) for m in messages]

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] = (),
        params: SamplingParams | None = None,
        cancel: CancelToken | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> Iterator[Delta]:
        return self.inner.stream(
            self.masked_messages(messages), tools=tools, params=params, cancel=cancel, tool_choice=tool_choice
        )

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # raw completions: the prompt is masked too; anything else (format, engine, info) is the inner's
        attr = getattr(self.inner, name)
        if name == "complete" and callable(attr):
            complete: Callable[..., Any] = attr
            return lambda prompt, *a, **kw: complete(self.mask(prompt), *a, **kw)
        return attr
