"""The runtime seam. Everything above the runtime (server, knowledge base, apps, CLI) depends on
``ChatModel`` only; it never imports llama_cpp, torch or transformers.

Two layers:
- ``TokenEngine``: a backend that turns prompt token ids into sampled token ids (llama.cpp, transformers).
- ``ChatModel``: messages in, typed deltas out. ``EngineChatModel`` (runtime/chat.py) builds one from an
  engine plus a ``ChatFormat``; remote backends (openai) implement ``ChatModel`` directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from glmkit.types import CancelToken, Delta, Message, ResolvedSampling, SamplingParams, Tool, ToolChoice


class Tokenizer(Protocol):
    """Plain text never becomes a special token: ``encode`` treats its input as text only."""

    def encode(self, text: str) -> list[int]:
        """Ids for ``text`` as a SentencePiece/BPE encode of that piece alone (no BOS, no specials)."""
        ...

    def encode_with_specials(self, text: str) -> list[int]:
        """Ids for template text in which special tokens are spelled out (e.g. ``<|im_start|>``)."""
        ...

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """Raw bytes of the pieces (special/control tokens render as their text, e.g. ``<|user|>``)."""
        ...

    def special_id(self, token: str) -> int | None:
        """Id of a special token by its text, or None when the vocabulary lacks it."""
        ...

    @property
    def special_texts(self) -> Sequence[str]:
        """The texts of all special/control tokens (used to fence user text)."""
        ...

    def is_eog(self, token_id: int) -> bool: ...


@dataclass(frozen=True)
class EngineInfo:
    name: str
    backend: str
    n_ctx: int
    path: str = ""
    architecture: str = ""
    chat_template: str | None = None
    size_bytes: int = 0
    # "grammar" (honours sampling.constraint), "logprobs" (yields Scored), "batching"
    features: frozenset[str] = frozenset()


class Scored(NamedTuple):
    """A generated id with its log-probability and the top alternatives, yielded instead of a bare id when
    ``sampling.logprobs`` is set and the engine can score."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...]


class TokenEngine(Protocol):
    @property
    def info(self) -> EngineInfo: ...

    @property
    def tokenizer(self) -> Tokenizer: ...

    def generate(
        self,
        prompt_ids: Sequence[int],
        sampling: ResolvedSampling,
        stop_ids: frozenset[int],
        cancel: CancelToken | None = None,
    ) -> Iterator[int | Scored]:
        """Yield sampled ids until a stop id (not yielded), ``max_tokens`` or cancellation.

        Engines that can constrain decoding (``sampling.constraint``) or score tokens
        (``sampling.logprobs``, yielding :class:`Scored`) say so in ``EngineInfo.features``."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ChatModel(Protocol):
    name: str

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] = (),
        params: SamplingParams | None = None,
        cancel: CancelToken | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> Iterator[Delta]:
        """Stream a reply: TextDelta*, ToolCallDelta*/ToolCallErrorDelta*, then UsageDelta, FinishDelta."""
        ...

    def close(self) -> None: ...
