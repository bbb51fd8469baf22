"""Run a chat model over a test set in ChatGLM3's conversation format, for ``glmkit eval predict``.

Each conversation's last assistant turn is the reference; everything before it (system with its tools,
user, earlier assistant and observation turns) is the prompt. Answers are greedy (temperature 0) so that
a before/after comparison measures the model, not the sampling; several run at once (the llama.cpp engine
decodes them in one batch). Results keep the input order."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from glmkit.errors import InvalidRequestError
from glmkit.runtime.chat import collect
from glmkit.runtime.protocol import ChatModel
from glmkit.types import Message, SamplingParams, Tool


@dataclass(frozen=True)
class TestItem:
    line: int
    messages: list[Message]
    tools: list[Tool]
    reference: str


def read_test_set(path: Path) -> list[TestItem]:
    """Test items from a ChatGLM3 JSONL file; a conversation without an assistant turn is an error naming
    its line."""
    from glmkit.runtime.formats.tools import normalize_tools
    from glmkit.train.data import read_conversations

    items = []
    for line, turns in read_conversations(path, field="data"):
        last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
        if last is None:
            raise InvalidRequestError(f"{path}:{line}: no assistant turn to use as the reference")
        tools: list[Tool] = []
        messages = []
        for t in turns[:last]:
            if t["role"] == "system" and t.get("tools"):
                tools = normalize_tools(t["tools"])
            messages.append(Message(t["role"], str(t.get("content", "")), str(t.get("metadata", "") or "")))
        if not messages or messages[-1].role not in ("user", "observation"):
            raise InvalidRequestError(
                f"{path}:{line}: the turn before the reference must be user or observation"
            )
        items.append(TestItem(line, messages, tools, str(turns[last].get("content", ""))))
    return items


def predict(
    model: ChatModel,
    items: Sequence[TestItem],
    *,
    max_tokens: int = 256,
    concurrency: int = 4,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[str]:
    """The model's greedy answer to each item, in order (tool calls are written as ``name(arguments)``)."""
    done = 0
    lock = threading.Lock()

    def one(item: TestItem) -> str:
        nonlocal done
        r = collect(
            model.stream(
                item.messages, tools=item.tools, params=SamplingParams(temperature=0, max_tokens=max_tokens)
            )
        )
        text = r.text.strip()
        if r.tool_calls:
            calls = [f"{c.name}({json.dumps(dict(c.arguments), ensure_ascii=False)})" for c in r.tool_calls]
            text = (text + "\n" if text else "") + "\n".join(calls)
        with lock:
            done += 1
            if progress is not None:
                progress(done, len(items), f"line {item.line}")
        return text

    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="glmkit-predict") as pool:
        return list(pool.map(one, items))


def write_predictions(path: Path, items: Sequence[TestItem], predictions: Sequence[str]) -> None:
    """JSONL ``{"line", "prediction", "reference"}``: ``glmkit eval classify|generation`` read it as is."""
    from glmkit.apps.batch import write_atomic

    rows = (
        json.dumps({"line": it.line, "prediction": p, "reference": it.reference}, ensure_ascii=False)
        for it, p in zip(items, predictions, strict=True)
    )
    write_atomic(path, "".join(r + "\n" for r in rows))

