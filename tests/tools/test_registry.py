"""Tools run only from the registry, with arguments validated against their schema first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from glmkit.errors import InvalidRequestError
from glmkit.tools.registry import ToolRegistry
from glmkit.tools.schema import ToolArgumentError, check_schema, errors

ORDER = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "pattern": "^[A-Z0-9]{4,12}$"},
        "count": {"type": "integer", "minimum": 1, "maximum": 10},
        "unit": {"enum": ["c", "f"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    },
    "required": ["order_id"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"order_id": 12345}, "arguments.order_id must be string, not integer"),
        ({"order_id": "A1B2", "count": "3"}, "arguments.count must be integer, not string"),
        ({"order_id": "A1B2", "count": True}, "arguments.count must be integer, not boolean"),
        ({"order_id": "A1B2", "count": 11}, "arguments.count must be <= 10"),
        ({"order_id": "a1"}, "does not match"),
        ({}, "arguments.order_id is required"),
        ({"order_id": "A1B2", "shell": "rm -rf /"}, "arguments.shell is not a known argument"),
        ({"order_id": "A1B2", "unit": "k"}, "must be one of ['c', 'f']"),
        ({"order_id": "A1B2", "tags": ["a", 1]}, "arguments.tags[1] must be string"),
        ({"order_id": "A1B2", "tags": ["a", "b", "c"]}, "at most 2 items"),
        ([1, 2], "arguments must be object, not array"),
    ],
)
def test_wrong_arguments_are_named(args: Any, problem: str) -> None:
    found = errors(ORDER, args)
    assert any(problem in e for e in found), found


def test_valid_arguments_pass_and_integral_floats_count_as_integers() -> None:
    assert errors(ORDER, {"order_id": "A1B2", "count": 3.0, "unit": "c", "tags": ["x"]}) == []


def test_registry_validates_before_the_handler_runs() -> None:
    reg = ToolRegistry()
    calls: list[dict[str, Any]] = []
    reg.register("lookup", lambda a: calls.append(a) or {"ok": True}, ORDER)
    assert reg.call("lookup", {"order_id": "A1B2"}) == {"ok": True}
    with pytest.raises(ToolArgumentError, match=r"lookup: invalid arguments: arguments\.order_id must be string"):
        reg.call("lookup", {"order_id": 7})
    narrower = {"type": "object", "properties": {"count": {"type": "integer", "maximum": 2}}}
    with pytest.raises(ToolArgumentError, match="<= 2"):
        reg.call("lookup", {"order_id": "A1B2", "count": 5}, schema=narrower)
    assert calls == [{"order_id": "A1B2"}]  # the rejected calls never reached the handler
    with pytest.raises(InvalidRequestError, match="no tool named 'shell' is registered"):
        reg.call("shell", {"cmd": "ls"})
    assert "code_interpreter" not in reg  # off unless enabled


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"$ref": "#/defs/x"}, "unsupported schema keyword"),
        ({"type": "object", "properties": {"a": {"oneOf": []}}}, "parameters.a: unsupported"),
        ({"type": "strng"}, "unknown type"),
        ({"type": "string", "pattern": "("}, "bad pattern"),
        ([], "must be an object"),
    ],
)
def test_schemas_outside_the_enforced_subset_are_refused(schema: Any, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem):
        check_schema(schema)


def test_bot_hands_off_when_the_model_fills_a_tool_with_wrong_types(tmp_path: Path) -> None:
    from fakes import SPECIALS, ScriptedEngine
    from glmkit.apps.bot_config import BotConfig
    from glmkit.apps.service import Bot
    from glmkit.apps.sessions import SessionStore
    from glmkit.runtime.chat import EngineChatModel
    from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
    from kb_fakes import HashEmbedder

    obs = 10 + SPECIALS.index("<|observation|>")
    (tmp_path / "bot.yaml").write_text(
        """
name: shop
default_route: {action: tool, tool: order_status, group: orders}
tools:
  - name: order_status
    handler: demo.order_status
    parameters:
      type: object
      properties: {order_id: {type: string}}
      required: [order_id]
""",
        "utf-8",
    )
    engine = ScriptedEngine(["order_status\n```python\ntool_call(order_id=12345)\n```", obs], n_ctx=4096)
    bot = Bot(
        BotConfig.load(tmp_path / "bot.yaml"),
        EngineChatModel(engine, ChatGLM3Format(), name="fake"),
        HashEmbedder(),
        SessionStore(tmp_path / "s.sqlite3"),
    )
    r = bot.turn(bot.start(), "我的订单12345到哪了")
    # the tool-call parser checks the arguments against the tool's schema before the registry is reached
    assert r.state == "waiting" and r.trace["handoff"]["group"] == "orders"
    assert r.trace["tool_error"] == ["argument 'order_id' of 'order_status' should be string, got int"]
    assert "tool_calls" not in r.trace  # the handler never ran


def test_bot_config_refuses_an_unenforceable_tool_schema(tmp_path: Path) -> None:
    from glmkit.apps.bot_config import BotConfig

    p = tmp_path / "bot.yaml"
    p.write_text(
        "name: a\ntools:\n  - name: t\n    handler: demo.order_status\n    parameters: {$ref: x}\n", "utf-8"
    )
    with pytest.raises(InvalidRequestError, match=r"tools.0.parameters.*unsupported schema keyword"):
        BotConfig.load(p)
