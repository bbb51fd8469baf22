"""Validate tool-call arguments against the tool's JSON Schema before any handler runs.

A deliberate subset of JSON Schema (draft 2020-12 semantics), enough for function parameters: ``type``
(one or a list), ``enum``, ``const``, ``properties``, ``required``, ``additionalProperties`` (bool or
schema), ``items``, ``minItems``/``maxItems``, ``minLength``/``maxLength``, ``pattern``,
``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``, ``anyOf``. ``check_schema`` refuses
keywords outside the subset that would change the meaning (``$ref``, ``oneOf``, ``allOf``, ``not``,
``if``…), so a schema is never silently half-enforced. JSON types are strict: ``true`` is not an
integer or a number, and ``"5"`` is not a number; ``1.0`` counts as an integer, as JSON Schema says."""

from __future__ import annotations

import re
from typing import Any

from glmkit.errors import InvalidRequestError

KNOWN = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items", "minItems",
    "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "anyOf", "description", "title", "default", "examples", "format", "$schema",
}  # fmt: skip
TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}


class ToolArgumentError(InvalidRequestError):
    code = "invalid_tool_arguments"


def check_schema(schema: Any, where: str = "parameters") -> None:
    """Raise InvalidRequestError when ``schema`` uses keywords or types this validator does not enforce."""
    if not isinstance(schema, dict):
        raise InvalidRequestError(f"{where}: a schema must be an object")
    unknown = sorted(set(schema) - KNOWN)
    if unknown:
        supported = ", ".join(sorted(KNOWN))
        raise InvalidRequestError(
            f"{where}: unsupported schema keyword(s) {', '.join(unknown)} (supported: {supported})"
        )
    types = schema.get("type")
    for t in [types] if isinstance(types, str) else (types or []):
        if t not in TYPES:
            raise InvalidRequestError(f"{where}: unknown type {t!r}")
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{where}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        check_schema(schema["additionalProperties"], f"{where}.additionalProperties")
    if isinstance(schema.get("items"), dict):
        check_schema(schema["items"], f"{where}[]")
    for i, sub in enumerate(schema.get("anyOf") or []):
        check_schema(sub, f"{where}.anyOf[{i}]")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except re.error as e:
            raise InvalidRequestError(f"{where}: bad pattern ({e})") from None


def _type_ok(value: Any, t: str) -> bool:
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if t == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float))  # number


def _json_type(value: Any) -> str:
    for t in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _type_ok(value, t):
            return t
    return type(value).__name__


def errors(schema: dict[str, Any], value: Any, path: str = "arguments") -> list[str]:
    """Every way ``value`` breaks ``schema``, each naming its path (empty: valid)."""
    out: list[str] = []
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        if not any(_type_ok(value, t) for t in allowed):
            return [f"{path} must be {' or '.join(allowed)}, not {_json_type(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path} must be one of {schema['enum']}, not {value!r}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{path} must be {schema['const']!r}")
    if "anyOf" in schema and not any(not errors(s, value, path) for s in schema["anyOf"]):
        out.append(f"{path} matches none of the allowed shapes")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name in schema.get("required") or []:
            if name not in value:
                out.append(f"{path}.{name} is required")
        extra = schema.get("additionalProperties", True)
        for name, v in value.items():
            if name in props:
                out += errors(props[name], v, f"{path}.{name}")
            elif extra is False:
                out.append(f"{path}.{name} is not a known argument (known: {', '.join(props) or 'none'})")
            elif isinstance(extra, dict):
                out += errors(extra, v, f"{path}.{name}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{path} needs at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{path} takes at most {schema['maxItems']} items")
        if isinstance(schema.get("items"), dict):
            for i, v in enumerate(value):
                out += errors(schema["items"], v, f"{path}[{i}]")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(f"{path} must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{path} must be at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{path} does not match {schema['pattern']!r}")
    if _type_ok(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{path} must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{path} must be <= {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append(f"{path} must be > {schema['exclusiveMinimum']}")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            out.append(f"{path} must be < {schema['exclusiveMaximum']}")
    return out


def validate(schema: dict[str, Any], value: Any, tool: str = "") -> None:
    """Raise ToolArgumentError listing every problem, when ``value`` does not satisfy ``schema``."""
    found = errors(schema, value)
    if found:
        raise ToolArgumentError(f"{tool + ': ' if tool else ''}invalid arguments: " + "; ".join(found[:10]))
