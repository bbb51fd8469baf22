"""Training examples from conversations: token ids in the model's own chat format and loss labels.

Convention (THUDM's ChatGLM3 finetune demo, applied to any format): an assistant turn's tokens are learned
— its metadata line (a tool name), its content, and the one token that ends the turn and makes the model
stop — while system, user and observation tokens (and role tokens that open a turn) get label ``-100``.
Labels are aligned with ``input_ids``; the model shifts them (``logits[t]`` predicts ``labels[t + 1]``).

Spans are found by rendering prefixes with the format glmkit serves the model with, so training and
serving see the same tokens:

- ``prompt_k = render(messages[:k])`` is what the model sees before it writes assistant turn ``k`` (the
  format appends its generation prompt). It must be a prefix of the whole conversation's rendering (the
  *prefix property*); a template that rewrites earlier turns breaks it and is reported, never guessed.
- The whole conversation is rendered with one probe user turn after it, so every assistant turn is
  followed by something. A turn's span runs from the end of ``prompt_k`` through the first stop token of
  the format (ChatML's ``<|im_end|>``; ChatGLM3's next role token ``<|user|>``/``<|observation|>``), or up
  to the next assistant turn's prompt when none comes first (ChatGLM3's ``<|assistant|>`` between two
  assistant turns, as the demo learns it). A final end token that belongs to the probe turn becomes the
  tokenizer's end-of-sequence token (ChatGLM3's ``</s>``), and the probe itself is cut off.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from glmkit.errors import InvalidRequestError, ToolCallParseError
from glmkit.runtime.formats.base import ChatFormat
from glmkit.runtime.formats.chatglm3 import INTERPRETER, TOOLS_PROMPT
from glmkit.runtime.formats.tools import normalize_tools, parse_chatglm3_call, strip_fence
from glmkit.runtime.protocol import Tokenizer
from glmkit.types import Message, Tool, ToolCall

IGNORE = -100  # the label torch's cross-entropy skips
PROBE = "继续"


@dataclass(frozen=True)
class Example:
    """One training sequence: ``labels[i]`` is ``input_ids[i]`` where learned, else ``IGNORE``."""

    input_ids: list[int]
    labels: list[int]

    @property
    def n_learned(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


# ---- ChatGLM3 turns -> glmkit messages ---------------------------------------------------------------
def to_messages(turns: Sequence[Mapping[str, Any]], format_name: str) -> tuple[list[Message], list[Tool]]:
    """Messages and tools for ``format_name`` from ChatGLM3 conversation turns (``glmkit.data.convert``).

    ``chatglm3`` renders the data exactly as THUDM's tokenizer does: tools become the system prompt
    (``content + "\\n" + json.dumps(tools, indent=4, ensure_ascii=False)``) and a tool-call turn keeps its
    metadata line and ``tool_call(...)`` body. Other formats (jinja templates) get the tools as tools and
    each call parsed (``ast`` literals, never evaluated) into a ``ToolCall`` the template renders its own
    way; ChatGLM3's tool preamble is dropped from the system prompt.
    """
    native = format_name == "chatglm3"
    messages: list[Message] = []
    tools: list[Tool] = []
    last_tool: str | None = None
    for i, t in enumerate(turns):
        role, content = t["role"], t.get("content", "")
        meta = t.get("metadata") or ""
        if role == "system" and t.get("tools"):
            if native:
                body = json.dumps(list(t["tools"]), indent=4, ensure_ascii=False)
                messages.append(Message("system", f"{content}\n{body}"))
                continue
            tools = normalize_tools(t["tools"])
            own = content.removesuffix(TOOLS_PROMPT).rstrip("\n")
            if own:
                messages.append(Message("system", own))
        elif role == "assistant" and meta:
            last_tool = meta
            if native:
                messages.append(Message("assistant", content, metadata=meta))
            else:
                messages.append(Message("assistant", "", tool_calls=(_call(meta, content, i),)))
        elif role == "observation":
            messages.append(Message("observation", content, name=last_tool))
        else:
            messages.append(Message(role, content))
    return messages, tools


def _call(name: str, content: str, index: int) -> ToolCall:
    if name == INTERPRETER:
        return ToolCall(INTERPRETER, {"code": strip_fence(content).strip()})
    try:
        return parse_chatglm3_call(name, content)
    except ToolCallParseError as e:
        raise InvalidRequestError(f"turn {index + 1}: the tool call cannot be read: {e.message}") from e


# ---- labels --------------------------------------------------------------------------------------------
def _first_difference(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _template_error(fmt: ChatFormat, k: int, why: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"chat format {fmt.name!r} breaks the prefix property at turn {k + 1}: {why}; its loss mask cannot "
        "be derived safely (choose another chat_format, or a template that renders earlier turns unchanged)",
        param="chat_format",
    )


def encode_conversation(
    messages: Sequence[Message],
    tools: Sequence[Tool],
    fmt: ChatFormat,
    tok: Tokenizer,
    *,
    eos_id: int | None,
) -> Example:
    """Ids and labels of one conversation (the convention is in the module docstring)."""
    msgs = list(messages)
    assistant = [k for k, m in enumerate(msgs) if m.role == "assistant"]
    if not assistant:
        raise InvalidRequestError("the conversation has no assistant turn to learn")
    stops = fmt.stop_ids(tok)
    seq = fmt.render_ids([*msgs, Message("user", PROBE)], tools, tok)
    full = fmt.render_ids(msgs, tools, tok)
    probe_start = _first_difference(seq, full)  # where the probe turn's rendering departs
    prompts = {k: fmt.render_ids(msgs[:k], tools, tok) for k in assistant}
    labels = [IGNORE] * len(seq)
    end = 0
    for j, k in enumerate(assistant):
        prompt = prompts[k]
        if seq[: len(prompt)] != prompt:
            where = _first_difference(seq, prompt)
            raise _template_error(fmt, k, f"later turns change token {where} of the prompt before it")
        start = len(prompt)
        if start < end:
            raise _template_error(fmt, k, "the prompt of this turn ends inside the previous turn")
        # the next assistant turn's prompt bounds this span (two assistant turns in a row)
        limit = len(seq)
        if j + 1 < len(assistant) and assistant[j + 1] == k + 1:
            limit = len(prompts[k + 1])
        stop = next((i for i in range(start, limit) if seq[i] in stops), None)
        end = stop + 1 if stop is not None else limit
        if end <= start:
            raise _template_error(fmt, k, "the assistant turn renders to no tokens")
        for i in range(start, end):
            labels[i] = seq[i]
    ids = seq[:end]
    labels = labels[:end]
    if end - 1 >= probe_start:  # the last end token belongs to the probe turn
        if eos_id is None:
            raise InvalidRequestError(
                f"chat format {fmt.name!r} writes no end-of-turn token and the tokenizer has no "
                "end-of-sequence token: the model could not learn to stop",
                param="chat_format",
            )
        ids[-1] = labels[-1] = eos_id
    return Example(ids, labels)


def truncate(ex: Example, max_len: int) -> Example:
    """The first ``max_len`` tokens (the head keeps the system prompt and the question)."""
    if len(ex.input_ids) <= max_len:
        return ex
    return Example(ex.input_ids[:max_len], ex.labels[:max_len])


def pack_texts(docs: Sequence[list[int]], block: int, eos_id: int | None) -> list[Example]:
    """Continued pre-training: documents joined (each followed by ``eos_id``) and cut into ``block``-token
    examples; every token is learned. The last, shorter block is kept if it has at least 2 tokens."""
    stream: list[int] = []
    for d in docs:
        stream += d
        if eos_id is not None:
            stream.append(eos_id)
    out = [stream[i : i + block] for i in range(0, len(stream), block)]
    return [Example(list(b), list(b)) for b in out if len(b) >= 2]
