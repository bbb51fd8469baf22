"""Tool schemas and tool-call parsing. Model output is parsed with ``ast``/``json``, never evaluated.

- ``normalize_tools`` accepts ChatGLM3's bare ``{name, description, parameters}`` or OpenAI's
  ``{"type": "function", "function": {...}}`` and returns bare ``Tool`` values, rejecting invalid schemas.
- ``parse_chatglm3_call`` reads ``tool_call(k=v, ...)`` (optionally inside a ```python fence).
- ``parse_json_calls`` reads the JSON forms small Qwen-style models write: ``<tool_call>{...}</tool_call>``,
  a ```json fence, or a bare ``{"name": ..., "arguments": ...}`` object (or a list of them).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from glmkit.errors import InvalidRequestError, ToolCallParseError
from glmkit.types import Tool, ToolCall

MAX_CALL_CHARS = 64 * 1024
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


def normalize_tools(raw: Iterable[Any]) -> list[Tool]:
    tools: list[Tool] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"tools[{i}]"
        if isinstance(item, Tool):
            tool = item
        else:
            if not isinstance(item, Mapping):
                raise InvalidRequestError(
                    f"{where} must be an object, got {type(item).__name__}", param=where
                )
            spec: Mapping[str, Any] = item
            if "type" in item or "function" in item:
                if item.get("type", "function") != "function":
                    raise InvalidRequestError(
                        f"{where}.type must be 'function', got {item.get('type')!r}", param=f"{where}.type"
                    )
                fn = item.get("function")
                if not isinstance(fn, Mapping):
                    raise InvalidRequestError(
                        f"{where}.function must be an object", param=f"{where}.function"
                    )
                spec, where = fn, f"{where}.function"
            name = spec.get("name")
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise InvalidRequestError(
                    f"{where}.name must be an identifier-like string (letters, digits, _ . -), got {name!r}",
                    param=f"{where}.name",
                )
            desc = spec.get("description", "")
            if not isinstance(desc, str):
                raise InvalidRequestError(
                    f"{where}.description must be a string", param=f"{where}.description"
                )
            params = spec.get("parameters", {"type": "object", "properties": {}})
            _check_schema(params, f"{where}.parameters")
            tool = Tool(name=name, description=desc, parameters=dict(params))
        if tool.name in seen:
            raise InvalidRequestError(f"tool name {tool.name!r} is given twice", param="tools")
        seen.add(tool.name)
        tools.append(tool)
    return tools


def _check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(f"{where} must be a JSON-schema object", param=where)
    if schema.get("type", "object") != "object":
        raise InvalidRequestError(f"{where}.type must be 'object', got {schema.get('type')!r}", param=where)
    props = schema.get("properties", {})
    if not isinstance(props, Mapping) or not all(isinstance(v, Mapping) for v in props.values()):
        raise InvalidRequestError(f"{where}.properties must map names to schema objects", param=where)
    req = schema.get("required", [])
    if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
        raise InvalidRequestError(f"{where}.required must be a list of property names", param=where)
    missing = [r for r in req if r not in props]
    if missing:
        raise InvalidRequestError(f"{where}.required names unknown properties: {missing}", param=where)


# ---- ChatGLM3: tool_call(k=v, ...) -----------------------------------------------------------------

_FENCE_RE = re.compile(r"```[a-zA-Z0-9_]*\s*\n?(.*?)\n?```", re.S)
_LITERAL_NAMES = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}


def strip_fence(text: str) -> str:
    m = _FENCE_RE.search(text)
    return m.group(1) if m else text


def parse_chatglm3_call(name: str, content: str) -> ToolCall:
    """Parse ChatGLM3's ``tool_call(k=v, ...)`` body for tool ``name`` without evaluating it."""
    if len(content) > MAX_CALL_CHARS:
        raise ToolCallParseError(f"tool call for {name!r} is longer than {MAX_CALL_CHARS} characters")
    code = strip_fence(content).strip()
    try:
        tree = ast.parse(code, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise ToolCallParseError(f"tool call for {name!r} is not valid call syntax: {e}") from e
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id != "tool_call":
        raise ToolCallParseError(f"tool call for {name!r} must be tool_call(k=v, ...), got {code[:80]!r}")
    if call.args:
        raise ToolCallParseError(f"tool call for {name!r} uses positional arguments; only k=v is allowed")
    args: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            raise ToolCallParseError(f"tool call for {name!r} uses **kwargs; only k=v is allowed")
        try:
            args[kw.arg] = _literal(kw.value)
        except RecursionError as e:
            raise ToolCallParseError(f"argument {kw.arg!r} of {name!r} is nested too deeply") from e
        except ValueError as e:
            raise ToolCallParseError(f"argument {kw.arg!r} of {name!r}: {e}") from e
    return ToolCall(name=name, arguments=args)


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
        return _LITERAL_NAMES[node.id]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[Any, Any] = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                raise ValueError("dict unpacking (**) is not a literal")
            key = _literal(k)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise ValueError("dict keys must be strings or numbers")
            out[key] = _literal(v)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v if isinstance(node.op, ast.USub) else v
    raise ValueError(f"value is not a literal (found {type(node).__name__})")


def render_chatglm3_call(call: ToolCall) -> str:
    """The assistant content ChatGLM3 writes for a call (the tool name goes in the metadata line)."""
    parts = ", ".join(f"{k}={_py_literal(v)}" for k, v in call.arguments.items())
    return f"```python\ntool_call({parts})\n```"


def _py_literal(v: Any) -> str:
    if v is None:
        return "None"
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a double-quoted literal Python reads back the same
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_py_literal(k)}: {_py_literal(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_py_literal(x) for x in v) + "]"
    raise InvalidRequestError(f"tool-call argument of type {type(v).__name__} cannot be rendered")


# ---- JSON-style calls (Qwen and other small models) -------------------------------------------------

_TAGGED_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def parse_json_calls(text: str) -> list[ToolCall]:
    """Parse one or more JSON tool calls; raises ToolCallParseError when ``text`` holds none."""
    if len(text) > MAX_CALL_CHARS:
        raise ToolCallParseError(f"tool call is longer than {MAX_CALL_CHARS} characters")
    bodies = [m.group(1) for m in _TAGGED_RE.finditer(text)] or [strip_fence(text)]
    calls: list[ToolCall] = []
    for body in bodies:
        body = body.strip()
        try:
            obj = json.loads(body)
        except (json.JSONDecodeError, RecursionError) as e:
            raise ToolCallParseError(f"tool call is not valid JSON: {e}") from e
        for item in obj if isinstance(obj, list) else [obj]:
            calls.append(_json_call(item))
    if not calls:
        raise ToolCallParseError("no tool call found")
    return calls


def _json_call(item: Any) -> ToolCall:
    if isinstance(item, Mapping) and isinstance(item.get("function"), Mapping):
        item = item["function"]  # OpenAI's wrapped form
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise ToolCallParseError('a tool call must be an object with a string "name"')
    args = item.get("arguments", item.get("parameters", {}))
    if isinstance(args, str):  # OpenAI-style JSON string (sometimes double-encoded by templates)
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as e:
            raise ToolCallParseError(f"arguments of {item['name']!r} are not valid JSON: {e}") from e
    if not isinstance(args, Mapping):
        raise ToolCallParseError(f"arguments of {item['name']!r} must be an object")
    return ToolCall(name=item["name"], arguments=dict(args))


def check_call(call: ToolCall, tools: Iterable[Tool]) -> None:
    """A call must name a known tool and carry its required arguments with the declared JSON types."""
    by_name = {t.name: t for t in tools}
    tool = by_name.get(call.name)
    if tool is None:
        raise ToolCallParseError(f"the model called unknown tool {call.name!r} (known: {sorted(by_name)})")
    props: Mapping[str, Any] = tool.parameters.get("properties", {})
    for req in tool.parameters.get("required", []):
        if req not in call.arguments:
            raise ToolCallParseError(f"call to {call.name!r} lacks required argument {req!r}")
    for k, v in call.arguments.items():
        typ = props.get(k, {}).get("type")
        if typ is not None and not _type_ok(v, typ):
            raise ToolCallParseError(
                f"argument {k!r} of {call.name!r} should be {typ}, got {type(v).__name__}"
            )


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _type_ok(v: Any, typ: Any) -> bool:
    types = typ if isinstance(typ, list) else [typ]
    for t in types:
        py = _JSON_TYPES.get(t)
        if py is None:
            return True  # unknown type keyword: do not reject what we cannot judge
        if isinstance(v, bool) and t in ("integer", "number"):
            continue
        if isinstance(v, py):
            return True
    return False
