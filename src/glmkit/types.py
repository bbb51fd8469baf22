"""Typed values that cross the runtime seam: messages, tools, sampling parameters and stream deltas."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from glmkit.errors import InvalidRequestError

Role = Literal["system", "user", "assistant", "observation"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant", "observation")
FinishReason = Literal["stop", "length", "tool_calls", "loop", "cancelled"]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = ""

    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class Message:
    """One chat turn. ``observation`` is a tool result (OpenAI's ``tool`` role maps onto it).

    ``metadata`` is ChatGLM3's per-turn metadata line: the tool name on an assistant turn that calls a
    tool, ``interpreter`` for the code interpreter; empty otherwise.
    """

    role: Role
    content: str
    metadata: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    name: str | None = None
    tool_call_id: str | None = None


@dataclass(frozen=True)
class Tool:
    """ChatGLM3's bare tool form: ``{name, description, parameters}`` (JSON schema)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(frozen=True)
class SamplingParams:
    """Sampling controls. ``None`` means "the default"; defaults are applied with ``is None``, never
    ``or``, so ``temperature=0`` (greedy) is kept as given."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float | None = None
    seed: int | None = None
    detect_loops: bool = True
    # Constrained decoding (a JSON schema, any JSON object, or backend grammar text); backends that cannot
    # constrain ignore it, and ``EngineChatModel`` says so through ``constraint_supported``.
    constraint: Constraint | None = None
    logprobs: int | None = None  # top alternatives per token to report (0 = just the chosen token's)

    DEFAULT_TEMPERATURE = 0.8
    DEFAULT_TOP_P = 0.8
    DEFAULT_TOP_K = 40
    DEFAULT_REPETITION_PENALTY = 1.1  # llama.cpp's own default; the anti-loop guard's first line
    DEFAULT_MAX_TOKENS = 512

    def resolved(self) -> ResolvedSampling:
        t = self.DEFAULT_TEMPERATURE if self.temperature is None else self.temperature
        p = self.DEFAULT_TOP_P if self.top_p is None else self.top_p
        k = self.DEFAULT_TOP_K if self.top_k is None else self.top_k
        rp = self.DEFAULT_REPETITION_PENALTY if self.repetition_penalty is None else self.repetition_penalty
        mt = self.DEFAULT_MAX_TOKENS if self.max_tokens is None else self.max_tokens
        if not 0.0 <= t <= 2.0:
            raise InvalidRequestError(f"temperature must be within [0, 2], got {t}", param="temperature")
        if not 0.0 < p <= 1.0:
            raise InvalidRequestError(f"top_p must be within (0, 1], got {p}", param="top_p")
        if k < 0:
            raise InvalidRequestError(f"top_k must be >= 0 (0 disables it), got {k}", param="top_k")
        if not 0.0 < rp <= 2.0:
            raise InvalidRequestError(
                f"repetition_penalty must be within (0, 2], got {rp}", param="repetition_penalty"
            )
        if mt < 1:
            raise InvalidRequestError(f"max_tokens must be >= 1, got {mt}", param="max_tokens")
        seed = 0 if self.seed is None else self.seed
        if seed < 0:
            raise InvalidRequestError(f"seed must be >= 0, got {seed}", param="seed")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise InvalidRequestError(
                f"top_logprobs must be within [0, 20], got {self.logprobs}", param="top_logprobs"
            )
        return ResolvedSampling(
            t,
            p,
            k,
            rp,
            mt,
            tuple(self.stop),
            seed,
            self.detect_loops,
            self.seed is not None,
            self.constraint,
            self.logprobs,
        )


@dataclass(frozen=True)
class Constraint:
    """What the reply must match: ``json_schema`` (value = the schema as JSON text), ``json_object`` (any
    JSON object) or ``gbnf`` (value = llama.cpp grammar text)."""

    kind: Literal["json_schema", "json_object", "gbnf"]
    value: str = ""


@dataclass(frozen=True)
class NamedTool:
    """``tool_choice`` naming one function."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedTool


@dataclass(frozen=True)
class ResolvedSampling:
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int
    detect_loops: bool
    # An explicit seed asks for the same text from the same request: backends then avoid shortcuts (such
    # as reusing a cached prompt prefix) whose different batch shapes shift logits by float rounding.
    reproducible: bool = False
    constraint: Constraint | None = None
    logprobs: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


# ---- stream deltas ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    call: ToolCall
    index: int = 0


@dataclass(frozen=True)
class ToolCallErrorDelta:
    """The model tried to call a tool but wrote something unparseable: reported, never raised."""

    raw: str
    error: str


@dataclass(frozen=True)
class FinishDelta:
    reason: FinishReason


@dataclass(frozen=True)
class TokenLogprob:
    """Log-probability of one generated token, with the top alternatives when asked for."""

    token: str
    logprob: float
    bytes: tuple[int, ...]
    top: tuple[tuple[str, float, tuple[int, ...]], ...] = ()


@dataclass(frozen=True)
class LogprobDelta:
    """Log-probabilities of the tokens behind the text streamed since the last one (chosen tokens only)."""

    tokens: tuple[TokenLogprob, ...]


@dataclass(frozen=True)
class UsageDelta:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


Delta = TextDelta | ToolCallDelta | ToolCallErrorDelta | FinishDelta | UsageDelta | LogprobDelta


class CancelToken:
    """Set from any thread to stop a generation at the next token."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class ChatResult:
    """A whole reply, collected from a stream."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_errors: list[ToolCallErrorDelta] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
