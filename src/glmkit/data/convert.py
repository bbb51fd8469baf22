"""Convert instruction and chat data into ChatGLM3's fine-tuning conversation format.

Output: one JSON object per line, ``{"conversations": [turn, ...]}``, each turn a message dict as ChatGLM3's
own tokenizer and ``model.chat`` history read it (``build_chat_input``: ``role``, ``content``, optional
``metadata``, and ``tools`` on the system turn), the format of THUDM/ChatGLM3's ``finetune_demo``:

    {"role": "system", "content": "Answer the following questions as best as you can. You have access
        to the following tools:", "tools": [{"name": ..., "description": ..., "parameters": {...}}]}
    {"role": "user", "content": "北京天气怎么样？"}
    {"role": "assistant", "metadata": "get_weather",
        "content": "```python\\ntool_call(city=\\"北京\\")\\n```"}
    {"role": "observation", "content": "{\\"temperature\\": 22}"}
    {"role": "assistant", "content": "北京现在22度。"}

- A tool call is an assistant turn whose ``metadata`` is the tool name and whose content is ChatGLM3's
  ``tool_call(k=v, …)`` in a python fence (the code interpreter: metadata ``interpreter``, the code in the
  fence); its result is the next ``observation`` turn (non-string results are JSON-encoded).
- Tools become bare ``{name, description, parameters}`` on the system turn, whose content is ChatGLM3's tool
  preamble (after the record's own system prompt, if it has one): rendering ``content + "\\n" +
  json.dumps(tools, indent=4, ensure_ascii=False)`` gives exactly the prompt ChatGLM3 was trained on.
- Several calls in one OpenAI assistant message become call/result pairs in order (each ``tool`` message
  is matched to its call by ``tool_call_id``), since ChatGLM3 makes one call per turn.

Input formats (``detect_format`` picks one per record for ``auto``):

- ``alpaca``: ``instruction``, optional ``input`` (appended after a newline), ``output``, optional
  ``system`` and ``history`` (``[[user, assistant], ...]``). CSV files use these column names (or
  prompt/question/query for instruction and response/answer for output).
- ``sharegpt``: ``conversations: [{"from": human|gpt|system|function_call|observation, "value": ...}]``,
  optional ``system`` and ``tools`` (a list or a JSON string); a ``function_call`` value is
  ``{"name": ..., "arguments": {...}}`` as JSON.
- ``openai``: ``messages: [{"role": system|user|assistant|tool, "content": ..., "tool_calls": [...]}]``,
  optional ``tools`` (OpenAI function tools); the legacy ``function`` role and ``function_call`` work too.
- ``chatglm3``: records already in the output format are validated and passed through (an assistant
  turn's ``name`` is read as its ``metadata``); the original
  finetune_demo form (top-level ``tools``, ``{"role": "tool", "name", "parameters", "observation"}``) is
  converted.

Every output conversation is checked (``validate``): known roles only, at most one system turn and only
first, then a user turn, no two user turns in a row, an observation only right after a tool call (or its
sibling observation), non-empty user and assistant text, and an assistant turn last. A record that breaks
a rule raises ``RecordError`` with the reason; ``convert_stream`` reports it with the line number and
goes on.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from glmkit.errors import InvalidRequestError, ToolCallParseError
from glmkit.runtime.formats.chatglm3 import INTERPRETER, TOOLS_PROMPT
from glmkit.runtime.formats.tools import check_call, normalize_tools, render_chatglm3_call
from glmkit.types import Tool, ToolCall

Format = Literal["alpaca", "sharegpt", "openai", "chatglm3"]
FORMATS: tuple[Format, ...] = ("alpaca", "sharegpt", "openai", "chatglm3")
ROLES = ("system", "user", "assistant", "observation")
Turn = dict[str, Any]

_INSTRUCTION_KEYS = ("instruction", "prompt", "question", "query")
_OUTPUT_KEYS = ("output", "response", "answer")
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "function_call",
    "observation": "observation",
    "tool": "observation",
    "function": "observation",
}


class RecordError(ValueError):
    """A record that cannot become a valid ChatGLM3 conversation; ``str(e)`` is the reason."""


@dataclass(frozen=True)
class Problem:
    """An invalid record: its 1-based line number and why it was skipped."""

    line: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


# ---- small checks --------------------------------------------------------------------------------------
def _text(value: Any, where: str, *, required: bool = True) -> str:
    """A string field; ``None`` counts as missing; OpenAI content parts are joined."""
    if value is None:
        if required:
            raise RecordError(f"{where} is missing")
        return ""
    if isinstance(value, list) and all(isinstance(p, Mapping) for p in value):
        parts = []
        for i, p in enumerate(value):
            if p.get("type") != "text" or not isinstance(p.get("text"), str):
                raise RecordError(f"{where}[{i}] is a {p.get('type')!r} part; only text parts are supported")
            parts.append(p["text"])
        return "".join(parts)
    if not isinstance(value, str):
        raise RecordError(f"{where} must be a string, got {type(value).__name__}")
    return value


def _observation_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, Mapping) and p.get("type") == "text" for p in value):
        return "".join(str(p.get("text", "")) for p in value)
    return json.dumps(value, ensure_ascii=False)


def _tools(raw: Any, where: str) -> list[Tool]:
    if raw is None or raw == "" or raw == []:
        return []
    if isinstance(raw, str):  # ShareGPT (LLaMA-Factory) keeps tools as a JSON string
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise RecordError(f"{where} is a string but not JSON ({e.msg})") from e
    if not isinstance(raw, list):
        raise RecordError(f"{where} must be a list of tools, got {type(raw).__name__}")
    try:
        return normalize_tools(raw)
    except InvalidRequestError as e:
        raise RecordError(f"{where}: {e.message}") from e


def _arguments(raw: Any, where: str) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise RecordError(f"{where} is not valid JSON ({e.msg})") from e
    if not isinstance(raw, dict):
        raise RecordError(f"{where} must be a JSON object, got {type(raw).__name__}")
    return raw


def call_turn(name: Any, arguments: dict[str, Any], tools: Sequence[Tool], where: str) -> Turn:
    """ChatGLM3's assistant turn for one tool call, checked against the record's tools when it has any."""
    if not isinstance(name, str) or not name:
        raise RecordError(f"{where}: the tool call has no name")
    if name == INTERPRETER and set(arguments) == {"code"} and isinstance(arguments["code"], str):
        return {
            "role": "assistant",
            "metadata": INTERPRETER,
            "content": f"```python\n{arguments['code']}\n```",
        }
    call = ToolCall(name=name, arguments=arguments)
    if tools:
        if name not in {t.name for t in tools}:
            raise RecordError(f"{where}: calls tool {name!r}, which is not in the record's tools")
        try:
            check_call(call, tools)
        except ToolCallParseError as e:
            raise RecordError(f"{where}: {e.message}") from e
    try:
        content = render_chatglm3_call(call)
    except InvalidRequestError as e:
        raise RecordError(f"{where}: {e.message}") from e
    return {"role": "assistant", "metadata": name, "content": content}


def _with_system(turns: list[Turn], system: str, tools: Sequence[Tool]) -> list[Turn]:
    """Put the system turn first: the record's system prompt, and the tools with ChatGLM3's preamble."""
    if not tools:
        return [{"role": "system", "content": system}, *turns] if system else turns
    content = f"{system}\n{TOOLS_PROMPT}" if system else TOOLS_PROMPT
    return [{"role": "system", "content": content, "tools": [t.as_dict() for t in tools]}, *turns]


def _take_system(turns: list[Turn]) -> tuple[str, list[Turn]]:
    """Split a leading system turn off (so tools can join it); a later one is left for ``validate``."""
    if turns and turns[0]["role"] == "system":
        return turns[0]["content"], turns[1:]
    return "", turns


# ---- the four readers ----------------------------------------------------------------------------------
def _first_key(record: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    return next((k for k in keys if k in record), None)


def from_alpaca(record: Mapping[str, Any]) -> list[Turn]:
    ikey, okey = _first_key(record, _INSTRUCTION_KEYS), _first_key(record, _OUTPUT_KEYS)
    if ikey is None:
        raise RecordError("'instruction' is missing")
    if okey is None:
        raise RecordError("'output' is missing")
    instruction = _text(record[ikey], f"'{ikey}'")
    extra = _text(record.get("input"), "'input'", required=False)
    user = f"{instruction}\n{extra}" if instruction.strip() and extra.strip() else instruction or extra
    turns: list[Turn] = []
    history = record.get("history") or []
    if isinstance(history, str):  # a CSV column holds it as JSON
        try:
            history = json.loads(history)
        except json.JSONDecodeError as e:
            raise RecordError(f"'history' is a string but not JSON ({e.msg})") from e
    if not isinstance(history, list):
        raise RecordError(
            f"'history' must be a list of [user, assistant] pairs, got {type(history).__name__}"
        )
    for i, pair in enumerate(history):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise RecordError(f"history[{i}] must be a [user, assistant] pair")
        turns.append({"role": "user", "content": _text(pair[0], f"history[{i}][0]")})
        turns.append({"role": "assistant", "content": _text(pair[1], f"history[{i}][1]")})
    turns.append({"role": "user", "content": user})
    turns.append({"role": "assistant", "content": _text(record[okey], f"'{okey}'")})
    system = _text(record.get("system"), "'system'", required=False)
    return _with_system(turns, system, [])


def from_sharegpt(record: Mapping[str, Any]) -> list[Turn]:
    conv = record.get("conversations")
    if not isinstance(conv, list):
        raise RecordError("'conversations' must be a list")
    tools = _tools(record.get("tools"), "'tools'")
    turns: list[Turn] = []
    for i, msg in enumerate(conv):
        where = f"conversations[{i}]"
        if not isinstance(msg, Mapping):
            raise RecordError(f"{where} must be an object")
        who = msg.get("from")
        role = _SHAREGPT_ROLES.get(who) if isinstance(who, str) else None
        if role is None:
            raise RecordError(
                f"{where}.from is {who!r}; expected one of human, gpt, system, function_call, observation"
            )
        value = msg.get("value")
        if role == "function_call":
            calls = _arguments_list(value, f"{where}.value")
            for j, c in enumerate(calls):
                turns.append(
                    call_turn(
                        c.get("name"),
                        _arguments(c.get("arguments"), f"{where}.value.arguments"),
                        tools,
                        f"{where}" + (f"[{j}]" if len(calls) > 1 else ""),
                    )
                )
        elif role == "observation":
            turns.append({"role": "observation", "content": _observation_text(value)})
        else:
            turns.append({"role": role, "content": _text(value, f"{where}.value")})
    system, turns = _take_system(turns)
    top = _text(record.get("system"), "'system'", required=False)
    if top and system:
        raise RecordError("the record has both a 'system' field and a system message")
    return _with_system(turns, top or system, tools)


def _arguments_list(value: Any, where: str) -> list[Mapping[str, Any]]:
    """A ShareGPT function_call value: one call object or a list of them, possibly as a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise RecordError(f"{where} is not valid JSON ({e.msg})") from e
    calls = value if isinstance(value, list) else [value]
    if not calls or not all(isinstance(c, Mapping) for c in calls):
        raise RecordError(f'{where} must be a {{"name": ..., "arguments": ...}} object')
    return calls


def from_openai(record: Mapping[str, Any]) -> list[Turn]:
    messages = record.get("messages")
    if not isinstance(messages, list):
        raise RecordError("'messages' must be a list")
    tools = _tools(record.get("tools") or record.get("functions"), "'tools'")
    turns: list[Turn] = []
    pending: list[tuple[str, Turn]] = []  # calls of the last assistant message not yet answered

    def flush() -> None:
        turns.extend(t for _, t in pending)
        pending.clear()

    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            raise RecordError(f"{where} must be an object")
        role = msg.get("role")
        if role in ("tool", "function"):
            if not pending:
                raise RecordError(f"{where}: a {role} result that answers no tool call")
            want = msg.get("tool_call_id")
            k = next((n for n, (cid, _) in enumerate(pending) if want and cid == want), 0)
            turns.append(pending.pop(k)[1])
            turns.append({"role": "observation", "content": _observation_text(msg.get("content"))})
        elif role == "assistant":
            flush()
            text = _text(msg.get("content"), f"{where}.content", required=False)
            calls = msg.get("tool_calls") or []
            if msg.get("function_call"):
                calls = [{"function": msg["function_call"]}]
            if not isinstance(calls, list):
                raise RecordError(f"{where}.tool_calls must be a list")
            if text.strip() or not calls:
                turns.append({"role": "assistant", "content": text})
            for j, c in enumerate(calls):
                cw = f"{where}.tool_calls[{j}]"
                fn = c.get("function") if isinstance(c, Mapping) else None
                if not isinstance(fn, Mapping):
                    raise RecordError(f"{cw}.function is missing")
                turn = call_turn(
                    fn.get("name"), _arguments(fn.get("arguments"), f"{cw}.function.arguments"), tools, cw
                )
                pending.append((str(c.get("id") or ""), turn))
        elif role in ("system", "user"):
            flush()
            turns.append({"role": role, "content": _text(msg.get("content"), f"{where}.content")})
        else:
            raise RecordError(f"{where}.role is {role!r}; expected one of system, user, assistant, tool")
    flush()
    system, turns = _take_system(turns)
    return _with_system(turns, system, tools)


def from_chatglm3(record: Mapping[str, Any]) -> list[Turn]:
    conv = record.get("conversations")
    if not isinstance(conv, list):
        raise RecordError("'conversations' must be a list")
    tools = _tools(record.get("tools"), "'tools'")
    turns: list[Turn] = []
    for i, msg in enumerate(conv):
        where = f"conversations[{i}]"
        if not isinstance(msg, Mapping):
            raise RecordError(f"{where} must be an object")
        role = msg.get("role")
        if role == "tool":  # the original finetune_demo form: a call and its result in one item
            turns.append(
                call_turn(
                    msg.get("name"), _arguments(msg.get("parameters"), f"{where}.parameters"), tools, where
                )
            )
            turns.append({"role": "observation", "content": _observation_text(msg.get("observation"))})
            continue
        if role not in ROLES:
            raise RecordError(f"{where}.role is {role!r}; expected one of {', '.join(ROLES)}")
        turn: Turn = {"role": role}
        meta = msg.get("metadata") or (msg.get("name") if role == "assistant" else None)  # "name": an alias
        if meta:
            turn["metadata"] = _text(meta, f"{where}.metadata")
        turn["content"] = (
            _text(msg.get("content"), f"{where}.content")
            if role != "observation"
            else _observation_text(msg.get("content"))
        )
        if role == "system" and msg.get("tools"):
            turn["tools"] = [t.as_dict() for t in _tools(msg["tools"], f"{where}.tools")]
        turns.append(turn)
    if tools:
        system, turns = _take_system(turns)
        return _with_system(turns, system, tools)
    return turns


READERS = {"alpaca": from_alpaca, "sharegpt": from_sharegpt, "openai": from_openai, "chatglm3": from_chatglm3}


def detect_format(record: Mapping[str, Any]) -> Format:
    """Which input format a record is in, from its keys."""
    if "messages" in record:
        return "openai"
    conv = record.get("conversations")
    if isinstance(conv, list):
        first = next((m for m in conv if isinstance(m, Mapping)), {})
        return "sharegpt" if "from" in first or "value" in first else "chatglm3"
    if _first_key(record, _INSTRUCTION_KEYS) or _first_key(record, _OUTPUT_KEYS):
        return "alpaca"
    raise RecordError(
        "cannot tell the format: expected 'messages' (OpenAI), 'conversations' (ShareGPT or ChatGLM3) "
        "or 'instruction'/'output' (Alpaca)"
    )


# ---- validation ----------------------------------------------------------------------------------------
def validate(turns: list[Turn]) -> None:
    """Raise ``RecordError`` unless ``turns`` is a conversation ChatGLM3 can be fine-tuned on."""
    if not turns:
        raise RecordError("the conversation is empty")
    prev = ""
    for i, t in enumerate(turns):
        role = t.get("role")
        where = f"turn {i + 1} ({role})"
        if role not in ROLES:
            raise RecordError(f"turn {i + 1} has role {role!r}; ChatGLM3 knows {', '.join(ROLES)}")
        if not isinstance(t.get("content"), str):
            raise RecordError(f"{where} has no text content")
        if role == "system" and i != 0:
            raise RecordError(f"{where}: a system turn may only come first, and only once")
        if role == "user" and prev == "user":
            raise RecordError(f"{where}: two user turns in a row")
        if role in ("user", "assistant") and not t["content"].strip():
            raise RecordError(f"{where} is empty")
        if role == "observation" and not (
            prev == "observation" or (prev == "assistant" and turns[i - 1].get("metadata"))
        ):
            raise RecordError(f"{where}: an observation must follow a tool call")
        if i == 0 and role not in ("system", "user"):
            raise RecordError(f"the conversation starts with {role}; it must start with system or user")
        if i == 1 and turns[0]["role"] == "system" and role != "user":
            raise RecordError(f"{where}: the turn after the system turn must be a user turn")
        prev = role
    if prev != "assistant":
        raise RecordError(f"the conversation ends with {prev}; it must end with an assistant turn")


def to_chatglm3(record: Any, fmt: Format | Literal["auto"] = "auto") -> dict[str, Any]:
    """One record as ``{"conversations": [...]}``, or ``RecordError`` with the reason it is invalid."""
    if not isinstance(record, Mapping):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    kind = detect_format(record) if fmt == "auto" else fmt
    turns = READERS[kind](record)
    validate(turns)
    return {"conversations": turns}


# ---- streams -------------------------------------------------------------------------------------------
def json_records(lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, Any]]:
    """``(line, parsed JSON)`` for each non-blank line; a line that is not JSON yields a ``Problem``."""
    for n, text in lines:
        if not text.strip():
            continue
        try:
            yield n, json.loads(text)
        except json.JSONDecodeError as e:
            yield n, Problem(n, f"not valid JSON ({e.msg} at column {e.colno})")


def csv_records(lines: Iterable[str], name: str = "<csv>") -> Iterator[tuple[int, Any]]:
    """``(line, row dict)`` for each row of a CSV with a header row. A quoted field may span lines; the
    line reported is the one the row ends on. Malformed CSV raises ``InvalidRequestError`` naming the line."""
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # long answers exceed the 128 KiB default
    reader = csv.DictReader(lines)
    try:
        for row in reader:
            n = reader.line_num
            if None in row:
                yield n, Problem(n, "the row has more fields than the header")
            else:
                yield n, {k: v for k, v in row.items() if k is not None}
    except csv.Error as e:
        raise InvalidRequestError(f"{name}:{reader.line_num}: malformed CSV ({e})", param="input") from e
    finally:
        csv.field_size_limit(limit)


def convert_stream(
    records: Iterable[tuple[int, Any]], fmt: Format | Literal["auto"] = "auto"
) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    """Each record converted, or a ``Problem`` naming its line and the reason."""
    for n, rec in records:
        if isinstance(rec, Problem):
            yield n, rec
            continue
        try:
            yield n, to_chatglm3(rec, fmt)
        except RecordError as e:
            yield n, Problem(n, str(e))
