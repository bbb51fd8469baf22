"""``EngineChatModel``: a ``ChatModel`` made of a token engine and a chat format.

One code path for every local backend: validate → render → check the context → generate, passing each
token through the stop-string scanner, the loop detector and the format's reply parser.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import replace

from glmkit.errors import ContextOverflowError, InvalidRequestError
from glmkit.runtime.formats.base import ChatFormat, IncrementalDecoder, ReplyParser
from glmkit.runtime.guards import LoopDetector, StopScanner
from glmkit.runtime.protocol import Scored, TokenEngine, Tokenizer
from glmkit.types import (
    ROLES,
    CancelToken,
    ChatResult,
    Delta,
    FinishDelta,
    FinishReason,
    LogprobDelta,
    Message,
    NamedTool,
    ResolvedSampling,
    SamplingParams,
    TextDelta,
    TokenLogprob,
    Tool,
    ToolCallDelta,
    ToolCallErrorDelta,
    ToolChoice,
    UsageDelta,
)

log = logging.getLogger(__name__)


def validate_messages(messages: Sequence[Message]) -> None:
    if not messages:
        raise InvalidRequestError("messages must not be empty", param="messages")
    for i, m in enumerate(messages):
        if m.role not in ROLES:
            raise InvalidRequestError(
                f"messages[{i}].role must be one of {', '.join(ROLES)}, got {m.role!r}",
                param=f"messages[{i}].role",
            )
        if not isinstance(m.content, str):
            raise InvalidRequestError(
                f"messages[{i}].content must be a string", param=f"messages[{i}].content"
            )
        if "\n" in m.metadata:
            raise InvalidRequestError(
                f"messages[{i}].metadata must be one line", param=f"messages[{i}].metadata"
            )
    if messages[-1].role == "assistant":
        raise InvalidRequestError(
            "the last message is the assistant's: nothing to answer (end with a user or observation turn)",
            param="messages",
        )


class EngineChatModel:
    def __init__(self, engine: TokenEngine, fmt: ChatFormat, name: str | None = None) -> None:
        self.engine = engine
        self.format = fmt
        self.name = name or engine.info.name

    def prompt_ids(self, messages: Sequence[Message], tools: Sequence[Tool] = ()) -> list[int]:
        validate_messages(messages)
        return self.format.render_ids(messages, tools, self.engine.tokenizer)

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Tool] = (),
        params: SamplingParams | None = None,
        cancel: CancelToken | None = None,
        tool_choice: ToolChoice = "auto",
    ) -> Iterator[Delta]:
        sampling = (params or SamplingParams()).resolved()
        tools = select_tools(tools, tool_choice)
        if tool_choice not in ("auto", "none") and tools:
            # "required" or a named function: the whole reply is forced to be one call, by grammar
            sampling = replace(sampling, constraint=self.format.forced_call_constraint(tools))
        features = self.engine.info.features
        if sampling.constraint is not None and "grammar" not in features:
            log.warning("%s cannot constrain decoding: the reply is not guaranteed to match", self.name)
            sampling = replace(sampling, constraint=None)
        self._check_logprobs(sampling)
        ids = self.prompt_ids(messages, tools)
        n_ctx = self.engine.info.n_ctx
        room = n_ctx - len(ids)
        if room < 1:
            raise ContextOverflowError(
                f"the prompt is {len(ids)} tokens but the context holds {n_ctx}: shorten the conversation "
                "or load the model with a larger n_ctx",
                param="messages",
            )
        if params is not None and params.max_tokens is not None and params.max_tokens > room:
            raise ContextOverflowError(
                f"max_tokens={params.max_tokens} does not fit: the prompt is {len(ids)} tokens of a "
                f"{n_ctx}-token context, leaving {room}",
                param="max_tokens",
            )
        if sampling.max_tokens > room:
            sampling = replace(sampling, max_tokens=room)
        tok = self.engine.tokenizer
        return self._generate(
            ids, sampling, self.format.parser(tools, tok), self.format.stop_ids(tok), cancel
        )

    def _generate(
        self,
        ids: list[int],
        sampling: ResolvedSampling,
        parser: ReplyParser,
        stop_ids: frozenset[int],
        cancel: CancelToken | None,
    ) -> Iterator[Delta]:
        tok = self.engine.tokenizer
        decoder = IncrementalDecoder(tok)
        stops = StopScanner(sampling.stop)
        loops = LoopDetector() if sampling.detect_loops else None
        n = 0
        reason: FinishReason = "stop"
        scored: list[TokenLogprob] = []
        for item in self.engine.generate(ids, sampling, stop_ids, cancel):
            n += 1
            if isinstance(item, Scored):
                tid = item.token
                scored.append(_token_logprob(tok, item))
            else:
                tid = item
            text = stops.feed(decoder.feed(tid))
            out = _with_ids(parser.feed(tid, text))
            if scored and any(isinstance(d, TextDelta) for d in out):
                yield LogprobDelta(tuple(scored))
                scored = []
            yield from out
            if stops.stopped:
                break
            if loops is not None and loops.feed(tid):
                reason = "loop"
                break
        else:
            if cancel is not None and cancel.cancelled:
                reason = "cancelled"
            elif n >= sampling.max_tokens:
                reason = "length"
        if not stops.stopped:
            tail = stops.feed(decoder.flush()) + stops.flush()
            if tail:
                yield from _with_ids(parser.feed(-1, tail))
        yield from _with_ids(parser.finish())
        if scored:
            yield LogprobDelta(tuple(scored))
        if reason == "stop" and parser.called_tools:
            reason = "tool_calls"
        yield UsageDelta(prompt_tokens=len(ids), completion_tokens=n)
        yield FinishDelta(reason)

    def complete(
        self, prompt: str, *, params: SamplingParams | None = None, cancel: CancelToken | None = None
    ) -> Iterator[Delta]:
        """Continue raw ``prompt`` text (no chat template): OpenAI's legacy completions."""
        if not prompt:
            raise InvalidRequestError("prompt is empty", param="prompt")
        sampling = (params or SamplingParams()).resolved()
        self._check_logprobs(sampling)
        tok = self.engine.tokenizer
        ids = tok.encode(prompt)
        room = self.engine.info.n_ctx - len(ids)
        if room < 1 or (params is not None and params.max_tokens is not None and params.max_tokens > room):
            raise ContextOverflowError(
                f"the prompt is {len(ids)} tokens and max_tokens={sampling.max_tokens}, but the context "
                f"holds {self.engine.info.n_ctx}",
                param="max_tokens" if room >= 1 else "prompt",
            )
        sampling = replace(sampling, max_tokens=min(sampling.max_tokens, room))
        # no chat format: text passes straight through, no stop ids beyond EOG, no loop guard (as before)
        raw = replace(sampling, detect_loops=False)
        return self._generate(ids, raw, _RawParser(), frozenset(), cancel)

    def _check_logprobs(self, sampling: ResolvedSampling) -> None:
        if sampling.logprobs is not None and "logprobs" not in self.engine.info.features:
            raise InvalidRequestError(
                f"the {self.engine.info.backend} backend does not report logprobs", param="logprobs"
            )

    def close(self) -> None:
        self.engine.close()


class _RawParser:
    """Raw completions: every piece of text is text (no tool calls, nothing held back)."""

    called_tools = False

    def feed(self, token_id: int, text: str) -> list[Delta]:
        return [TextDelta(text)] if text else []

    def finish(self) -> list[Delta]:
        return []


def select_tools(tools: Sequence[Tool], choice: ToolChoice) -> Sequence[Tool]:
    """The tools a reply may call under OpenAI's ``tool_choice``.

    ``none`` drops them from the prompt too: a small model shown tools calls them even when told not to."""
    if choice == "none":
        return ()
    if isinstance(choice, NamedTool):
        named = [t for t in tools if t.name == choice.name]
        if not named:
            known = ", ".join(t.name for t in tools) or "none were given"
            raise InvalidRequestError(
                f"tool_choice names function {choice.name!r}, which is not among the tools ({known})",
                param="tool_choice",
            )
        return named
    if choice == "required" and not tools:
        raise InvalidRequestError("tool_choice 'required' needs at least one tool", param="tool_choice")
    return tools


def _token_logprob(tok: Tokenizer, s: Scored) -> TokenLogprob:
    def piece(t: int) -> tuple[str, tuple[int, ...]]:
        b = tok.decode_bytes([t])
        return b.decode("utf-8", "replace"), tuple(b)

    text, raw = piece(s.token)
    top = []
    for t, lp in s.top:
        alt, alt_raw = piece(t)
        top.append((alt, lp, alt_raw))
    return TokenLogprob(text, s.logprob, raw, tuple(top))


def _with_ids(deltas: list[Delta]) -> list[Delta]:
    """Tool calls get OpenAI-style ids so a client can answer each one with a tool message."""
    return [
        ToolCallDelta(replace(d.call, id=f"call_{secrets.token_hex(12)}"), d.index)
        if isinstance(d, ToolCallDelta) and not d.call.id
        else d
        for d in deltas
    ]


def collect(stream: Iterator[Delta]) -> ChatResult:
    """Drain a delta stream into one ``ChatResult``."""
    res = ChatResult()
    parts: list[str] = []
    for d in stream:
        if isinstance(d, TextDelta):
            parts.append(d.text)
        elif isinstance(d, ToolCallDelta):
            res.tool_calls.append(d.call)
        elif isinstance(d, ToolCallErrorDelta):
            res.tool_call_errors.append(d)
        elif isinstance(d, UsageDelta):
            res.prompt_tokens, res.completion_tokens = d.prompt_tokens, d.completion_tokens
        elif isinstance(d, FinishDelta):
            res.finish_reason = d.reason
    res.text = "".join(parts)
    return res
