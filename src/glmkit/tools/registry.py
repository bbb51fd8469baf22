"""The tool registry: the only way a model's tool call reaches code.

A tool is a name, a description, a JSON Schema for its arguments (checked when registered) and a Python
handler registered by the application — never code from a config file, a request or the model. A call
is validated against the schema first (``ToolArgumentError`` names every bad argument) and only then
handed to the handler. There is no shell tool. The code interpreter (``glmkit.tools.sandbox``) is
registered only by ``enable_code_interpreter``, which ``Settings.code_interpreter`` controls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from glmkit.errors import InvalidRequestError
from glmkit.tools.schema import check_schema, validate

Handler = Callable[[dict[str, Any]], Any]
CODE_INTERPRETER = "code_interpreter"


@dataclass(frozen=True)
class RegisteredTool:
    name: str
    handler: Handler
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    description: str = ""


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, RegisteredTool] = {}

    def register(
        self, name: str, handler: Handler, parameters: dict[str, Any] | None = None, description: str = ""
    ) -> RegisteredTool:
        params = parameters if parameters is not None else {"type": "object", "properties": {}}
        check_schema(params, f"tool {name}")
        tool = RegisteredTool(name, handler, params, description)
        self._tools[name] = tool
        return tool

    def tool(
        self, name: str, parameters: dict[str, Any] | None = None, description: str = ""
    ) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.register(name, fn, parameters, description or (fn.__doc__ or "").strip())
            return fn

        return deco

    def unregister(self, name: str) -> None:
        self._tools.pop(name, None)

    def get(self, name: str) -> RegisteredTool:
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self._tools)) or "none"
            raise InvalidRequestError(f"no tool named {name!r} is registered (registered: {known})")
        return tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return sorted(self._tools)

    def call(self, name: str, arguments: Any, schema: dict[str, Any] | None = None) -> Any:
        """Validate ``arguments`` against the tool's schema (and ``schema``, e.g. a bot's narrower one),
        then run the handler."""
        tool = self.get(name)
        validate(tool.parameters, arguments, name)
        if schema is not None:
            validate(schema, arguments, name)
        return tool.handler(dict(arguments))


REGISTRY = ToolRegistry()


def enable_code_interpreter(registry: ToolRegistry = REGISTRY, limits: Any = None) -> RegisteredTool:
    """Register the sandboxed Python interpreter as the tool ``code_interpreter``."""
    from glmkit.tools.sandbox import Limits, run_python

    lim = limits or Limits()

    def run(args: dict[str, Any]) -> dict[str, object]:
        return run_python(str(args["code"]), lim).as_dict()

    return registry.register(
        CODE_INTERPRETER,
        run,
        {
            "type": "object",
            "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 100_000}},
            "required": ["code"],
            "additionalProperties": False,
        },
        "Run Python 3 code in an isolated process (no network, no files outside a scratch folder, "
        f"{lim.cpu_seconds}s CPU, {lim.memory_bytes // 2**20} MiB); returns stdout, stderr and exit code.",
    )
