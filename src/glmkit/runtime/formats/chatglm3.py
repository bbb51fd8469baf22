"""ChatGLM3's own prompt format, rendered token-exactly (THUDM/chatglm3-6b PROMPT.md and tokenizer).

    [gMASK] sop  { <|role|> encode(metadata + "\\n") encode(content) }*  <|assistant|>

Each ``encode`` is a separate SentencePiece encode (each adds its own leading ▁). Role tokens are added
by id and never produced from text, which is what keeps typed ``<|user|>`` in user content harmless.
Generation stops on ``</s>`` (2), ``<|user|>`` (64795) and ``<|observation|>`` (64797).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from glmkit.errors import ModelLoadError, ToolCallParseError
from glmkit.runtime.formats.base import ReplyParser, register_format
from glmkit.runtime.formats.tools import check_call, parse_chatglm3_call, render_chatglm3_call, strip_fence
from glmkit.runtime.protocol import Tokenizer
from glmkit.types import (
    Constraint,
    Delta,
    Message,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallErrorDelta,
)

SPECIAL_TOKENS: dict[str, int] = {
    "[MASK]": 64789,
    "[gMASK]": 64790,
    "[sMASK]": 64791,
    "sop": 64792,
    "eop": 64793,
    "<|system|>": 64794,
    "<|user|>": 64795,
    "<|assistant|>": 64796,
    "<|observation|>": 64797,
}
EOS_ID = 2
TOOLS_PROMPT = "Answer the following questions as best as you can. You have access to the following tools:"
INTERPRETER = "interpreter"


def tools_system_content(tools: Sequence[Tool]) -> str:
    return TOOLS_PROMPT + "\n" + json.dumps([t.as_dict() for t in tools], indent=4, ensure_ascii=False)


def _turns(messages: Sequence[Message], tools: Sequence[Tool]) -> list[tuple[str, str, str]]:
    """(role token, metadata, content) per rendered turn; an assistant turn with calls becomes several."""
    turns: list[tuple[str, str, str]] = []
    if tools:
        turns.append(("<|system|>", "", tools_system_content(tools)))
    for m in messages:
        role = f"<|{m.role}|>"
        if m.role == "assistant" and m.tool_calls:
            if m.content:
                turns.append((role, "", m.content))
            for call in m.tool_calls:
                if call.name == INTERPRETER and set(call.arguments) == {"code"}:
                    turns.append((role, INTERPRETER, f"```python\n{call.arguments['code']}\n```"))
                else:
                    turns.append((role, call.name, render_chatglm3_call(call)))
        else:
            turns.append((role, m.metadata, m.content))
    return turns


class ChatGLM3Format:
    name = "chatglm3"

    def _special(self, tok: Tokenizer, text: str) -> int:
        tid = tok.special_id(text)
        if tid is None:
            raise ModelLoadError(f"the tokenizer has no {text} token: it is not a ChatGLM3 tokenizer")
        return tid

    def render_ids(self, messages: Sequence[Message], tools: Sequence[Tool], tok: Tokenizer) -> list[int]:
        ids = [self._special(tok, "[gMASK]"), self._special(tok, "sop")]
        for role, meta, content in _turns(messages, tools):
            ids.append(self._special(tok, role))
            ids += tok.encode(f"{meta}\n")
            if content:
                ids += tok.encode(content)
        ids.append(self._special(tok, "<|assistant|>"))
        return ids

    def render_text(self, messages: Sequence[Message], tools: Sequence[Tool]) -> str:
        out = ["[gMASK]sop"]
        for role, meta, content in _turns(messages, tools):
            out.append(f"{role}{meta}\n{content}")
        out.append("<|assistant|>")
        return "".join(out)

    def stop_ids(self, tok: Tokenizer) -> frozenset[int]:
        return frozenset({EOS_ID, self._special(tok, "<|user|>"), self._special(tok, "<|observation|>")})

    def forced_call_constraint(self, tools: Sequence[Tool]) -> Constraint:
        """ChatGLM3's call turn: ``NAME\n```python\ntool_call(k=v, …)\n```` with Python literal values."""
        names = " | ".join(_gbnf_literal(t.name) for t in tools)
        return Constraint("gbnf", _CHATGLM3_CALL_GBNF.replace("NAMES", names))

    def parser(self, tools: Sequence[Tool], tok: Tokenizer) -> ReplyParser:
        return ChatGLM3Parser(tools, self._special(tok, "<|assistant|>"))


_CHATGLM3_CALL_GBNF = r"""
root   ::= " "? name "\n" "```python\n" "tool_call(" args? ")\n```"
name   ::= NAMES
args   ::= kv ("," " "? kv)*
kv     ::= [a-zA-Z_] [a-zA-Z0-9_]* "=" value
value  ::= string | number | "True" | "False" | "None" | list | dict
string ::= "\"" ([^"\\\n] | "\\" ["\\/bfnrtu])* "\"" | "'" ([^'\\\n] | "\\" ['\\])* "'"
number ::= "-"? [0-9]+ ("." [0-9]+)?
list   ::= "[" (value ("," " "? value)*)? "]"
dict   ::= "{" (string ":" " "? value ("," " "? string ":" " "? value)*)? "}"
"""


def _gbnf_literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@register_format("chatglm3")
def _make(**_: object) -> ChatGLM3Format:
    return ChatGLM3Format()


class ChatGLM3Parser:
    """Streams plain answers as they come; buffers a turn whose metadata line names a tool and parses it
    when the turn ends (at ``<|assistant|>`` or the end of generation)."""

    def __init__(self, tools: Sequence[Tool], assistant_id: int) -> None:
        self._tools = list(tools)
        self._assistant_id = assistant_id
        self._meta: str | None = None  # None until the metadata line is complete
        self._buf = ""  # metadata-in-progress, or a tool call's body
        self._held_ws = ""  # trailing whitespace of a plain answer, released if more text follows
        self._started = False
        self._calls = 0

    @property
    def called_tools(self) -> bool:
        return self._calls > 0

    def feed(self, token_id: int, text: str) -> list[Delta]:
        if token_id == self._assistant_id:
            out = self._end_turn()
            self._meta, self._buf, self._held_ws, self._started = None, "", "", False
            return out
        if not text:
            return []
        if self._meta is None:
            self._buf += text
            if "\n" not in self._buf:
                return []
            meta, rest = self._buf.split("\n", 1)
            self._meta, self._buf = meta.strip(), ""
            text = rest
            if self._is_call_turn():
                self._buf = text
                return []
            if self._meta:  # a metadata line but no tools to call: show everything the model wrote
                text = f"{self._meta}\n{text}"
        if self._is_call_turn():
            self._buf += text
            return []
        return self._plain(text)

    def _is_call_turn(self) -> bool:
        return bool(self._meta) and (bool(self._tools) or self._meta == INTERPRETER)

    def _plain(self, text: str) -> list[Delta]:
        if not self._started:
            text = text.lstrip()
            if not text:
                return []
            self._started = True
        text = self._held_ws + text
        body = text.rstrip()
        self._held_ws = text[len(body) :]
        return [TextDelta(body)] if body else []

    def _end_turn(self) -> list[Delta]:
        if self._meta is None:
            # the turn ended inside its metadata line: no tool name was completed, so it is plain text
            leftover, self._buf = self._buf, ""
            if leftover.strip() and self._tools:
                return [ToolCallErrorDelta(raw=leftover, error="tool call ended before its body")]
            return self._plain(leftover)
        if not self._is_call_turn():
            return []
        raw, self._buf = self._buf, ""
        self._calls += 1
        if self._meta == INTERPRETER:
            return [ToolCallDelta(ToolCall(INTERPRETER, {"code": strip_fence(raw).strip()}), self._calls - 1)]
        try:
            call = parse_chatglm3_call(self._meta, raw)
            check_call(call, self._tools)
        except ToolCallParseError as e:
            self._calls -= 1
            return [ToolCallErrorDelta(raw=f"{self._meta}\n{raw}", error=e.message)]
        return [ToolCallDelta(call, self._calls - 1)]

    def finish(self) -> list[Delta]:
        return self._end_turn()
