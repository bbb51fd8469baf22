"""Training data files, checked whole before training starts.

- Supervised methods (lora, ptuning, full): JSONL, one ``{"conversations": [turn, ...]}`` per line in
  ChatGLM3's format (what ``glmkit data convert`` writes), validated by ``glmkit.data.convert`` — roles
  system/user/assistant/observation, a system turn only first (it may carry ``tools``), an assistant turn
  last, an observation only after a tool call. A tool-call turn names its tool in ``metadata`` (``name``
  is accepted too).
- ``pretrain``: raw text — a ``.jsonl`` file with a ``"text"`` string per line, or any other file read as
  UTF-8 text whose documents are separated by blank lines. Documents are packed into ``max_seq_len``
  blocks with an end-of-sequence token between them; every token is learned.

Every bad line is collected and reported together (``FILE:LINE: reason``, the first ten, then a count) as
one ``InvalidRequestError``; an empty dataset is an error too. Nothing is written before the data passes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError
from glmkit.train.masks import Example, encode_conversation, pack_texts, to_messages, truncate
from glmkit.train.model import BaseModel

MAX_REPORTED = 10


@dataclass(frozen=True)
class Dataset:
    examples: list[Example]
    records: int  # conversations or documents read
    truncated: int  # examples cut to max_seq_len
    dropped: int  # examples with nothing left to learn after truncation

    @property
    def tokens(self) -> int:
        return sum(len(e.input_ids) for e in self.examples)


class _Problems:
    def __init__(self, path: Path, field: str) -> None:
        self.path, self.field = path, field
        self.items: list[str] = []

    def add(self, line: int, reason: str) -> None:
        self.items.append(f"{self.path}:{line}: {reason}")

    def raise_if_any(self) -> None:
        if not self.items:
            return
        shown = self.items[:MAX_REPORTED]
        more = len(self.items) - len(shown)
        tail = f"\n… and {more} more bad lines" if more else ""
        raise InvalidRequestError(
            f"{self.field}: {len(self.items)} bad line(s) in {self.path}:\n" + "\n".join(shown) + tail,
            param=self.field,
        )


def _lines(path: Path, problems: _Problems) -> Iterator[tuple[int, str]]:
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                problems.add(n, f"not UTF-8 (byte {e.start + 1})")
                continue
            yield n, text.lstrip("\ufeff") if n == 1 else text


def read_conversations(path: Path, field: str = "data") -> list[tuple[int, list[dict[str, Any]]]]:
    """``(line, turns)`` for every conversation in a ChatGLM3 JSONL file, or one error naming bad lines."""
    from glmkit.data.convert import RecordError, to_chatglm3

    problems = _Problems(path, field)
    out: list[tuple[int, list[dict[str, Any]]]] = []
    for n, text in _lines(path, problems):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            problems.add(n, f"not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
            problems.add(n, 'expected {"conversations": [...]} (ChatGLM3 format; see glmkit data convert)')
            continue
        record = {**record, "conversations": [_name_as_metadata(t) for t in record["conversations"]]}
        try:
            out.append((n, to_chatglm3(record, "chatglm3")["conversations"]))
        except RecordError as e:
            problems.add(n, str(e))
    problems.raise_if_any()
    if not out:
        raise InvalidRequestError(f"{field}: {path} holds no conversations", param=field)
    return out


def _name_as_metadata(turn: Any) -> Any:
    if (
        isinstance(turn, dict)
        and turn.get("role") == "assistant"
        and turn.get("name")
        and not turn.get("metadata")
    ):
        return {**{k: v for k, v in turn.items() if k != "name"}, "metadata": turn["name"]}
    return turn


def read_texts(path: Path, field: str = "data") -> list[str]:
    """Documents of a pretraining file: JSONL ``text`` fields, or blank-line-separated plain text."""
    problems = _Problems(path, field)
    docs: list[str] = []
    if path.suffix in (".jsonl", ".json"):
        for n, text in _lines(path, problems):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                problems.add(n, f"not valid JSON ({e.msg} at column {e.colno})")
                continue
            value = record.get("text") if isinstance(record, dict) else None
            if not isinstance(value, str):
                problems.add(n, 'expected {"text": "..."} with a string')
            elif value.strip():
                docs.append(value)
    else:
        current: list[str] = []
        for _, text in _lines(path, problems):
            if text.strip():
                current.append(text.rstrip("\r\n"))
            elif current:
                docs.append("\n".join(current))
                current = []
        if current:
            docs.append("\n".join(current))
    problems.raise_if_any()
    if not docs:
        raise InvalidRequestError(f"{field}: {path} holds no text", param=field)
    return docs


def build_dataset(path: Path, method: str, base: BaseModel, max_seq_len: int, field: str = "data") -> Dataset:
    """Read, check and tokenize a data file for ``method``."""
    if method == "pretrain":
        docs = read_texts(path, field)
        blocks = pack_texts([base.tokenizer.encode(d) for d in docs], max_seq_len, base.eos_id)
        if not blocks:
            raise InvalidRequestError(f"{field}: {path} tokenizes to fewer than 2 tokens", param=field)
        return Dataset(blocks, len(docs), 0, 0)
    problems = _Problems(path, field)
    examples: list[Example] = []
    truncated = dropped = 0
    convs = read_conversations(path, field)
    for n, turns in convs:
        try:
            messages, tools = to_messages(turns, base.fmt.name)
            ex = encode_conversation(messages, tools, base.fmt, base.tokenizer, eos_id=base.eos_id)
        except InvalidRequestError as e:
            problems.add(n, e.message)
            continue
        if len(ex.input_ids) > max_seq_len:
            truncated += 1
            ex = truncate(ex, max_seq_len)
            if ex.n_learned == 0:
                dropped += 1
                continue
        examples.append(ex)
    problems.raise_if_any()
    if not examples:
        raise InvalidRequestError(
            f"{field}: no conversation of {path} has an assistant token within max_seq_len={max_seq_len}",
            param="max_seq_len",
        )
    return Dataset(examples, len(convs), truncated, dropped)
