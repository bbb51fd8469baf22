import json

import pytest

from glmkit.errors import InvalidRequestError, ToolCallParseError
from glmkit.runtime.formats.tools import (
    check_call,
    normalize_tools,
    parse_chatglm3_call,
    parse_json_calls,
    render_chatglm3_call,
)
from glmkit.types import Tool, ToolCall

WEATHER = {
    "name": "get_weather",
    "description": "查询天气",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}


def test_chatglm3_call_with_nested_values_quotes_and_chinese() -> None:
    body = '```python\ntool_call(city="北京", opts={"units": ["c", "f"], "deep": {"x": [1, -2.5, None]}}, note=\'他说 "好"\', ok=true)\n```'
    call = parse_chatglm3_call("get_weather", body)
    assert call.name == "get_weather"
    assert call.arguments == {
        "city": "北京",
        "opts": {"units": ["c", "f"], "deep": {"x": [1, -2.5, None]}},
        "note": '他说 "好"',
        "ok": True,
    }


def test_chatglm3_call_round_trips_through_render() -> None:
    call = ToolCall("f", {"s": "引号\"和'撇号'\n换行", "n": [1, {"k": False}], "z": None})
    assert parse_chatglm3_call("f", render_chatglm3_call(call)).arguments == call.arguments


@pytest.mark.parametrize(
    "body, needle",
    [
        ('tool_call("北京")', "positional"),
        ("tool_call(**{'a': 1})", "**kwargs"),
        ("tool_call(a=__import__('os').system('echo hacked'))", "not a literal"),
        ("tool_call(a=open('/etc/passwd'))", "not a literal"),
        ("other_fn(a=1)", "must be tool_call"),
        ("tool_call(a=1", "not valid call syntax"),
        ("tool_call(a=[1, 2]+[3])", "not a literal"),
        ("tool_call(a=" + "[" * 2000 + "]" * 2000 + ")", "tool call"),
    ],
)
def test_malformed_chatglm3_calls_are_reported_not_run(body: str, needle: str) -> None:
    with pytest.raises(ToolCallParseError) as e:
        parse_chatglm3_call("t", body)
    assert needle in e.value.message


def test_oversized_call_is_rejected() -> None:
    with pytest.raises(ToolCallParseError, match="longer than"):
        parse_chatglm3_call("t", "tool_call(a='" + "x" * 70000 + "')")


def test_openai_tool_schema_is_unwrapped_to_chatglm3_form() -> None:
    tools = normalize_tools([{"type": "function", "function": WEATHER}, WEATHER | {"name": "other"}])
    assert tools[0] == Tool("get_weather", "查询天气", WEATHER["parameters"])
    assert tools[1].name == "other"
    assert tools[0].as_dict() == WEATHER


@pytest.mark.parametrize(
    "bad, needle",
    [
        ([{"type": "function"}], "function must be an object"),
        ([{"type": "retrieval", "function": WEATHER}], "type must be 'function'"),
        ([{"name": "has space"}], "name must be"),
        ([{"name": "f", "parameters": {"type": "array"}}], "type must be 'object'"),
        (
            [{"name": "f", "parameters": {"type": "object", "properties": {"a": {}}, "required": ["b"]}}],
            "unknown",
        ),
        ([{"name": "f", "parameters": "nope"}], "JSON-schema object"),
        ([WEATHER, WEATHER], "given twice"),
        (["get_weather"], "must be an object"),
    ],
)
def test_invalid_tool_schemas_name_the_problem(bad: list[object], needle: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        normalize_tools(bad)
    assert needle in e.value.message


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京"}}\n</tool_call>',
        '```json\n{"name": "get_weather", "arguments": {"city": "北京"}}\n```',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"北京\\"}"}',
        '{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "北京"}}}',
    ],
)
def test_json_call_forms(text: str) -> None:
    (call,) = parse_json_calls(text)
    assert call == ToolCall("get_weather", {"city": "北京"})


def test_several_tagged_calls() -> None:
    text = '<tool_call>{"name": "a", "arguments": {}}</tool_call>\n<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>'
    assert [c.name for c in parse_json_calls(text)] == ["a", "b"]


def test_check_call_validates_name_required_and_types() -> None:
    tools = normalize_tools([WEATHER])
    check_call(ToolCall("get_weather", {"city": "北京", "days": 3}), tools)
    with pytest.raises(ToolCallParseError, match="unknown tool"):
        check_call(ToolCall("nope", {}), tools)
    with pytest.raises(ToolCallParseError, match="required argument 'city'"):
        check_call(ToolCall("get_weather", {}), tools)
    with pytest.raises(ToolCallParseError, match="should be integer"):
        check_call(ToolCall("get_weather", {"city": "x", "days": "3"}), tools)
    with pytest.raises(ToolCallParseError, match="should be integer"):
        check_call(ToolCall("get_weather", {"city": "x", "days": True}), tools)


def test_tools_prompt_json_is_chatglm3s() -> None:
    from glmkit.runtime.formats.chatglm3 import tools_system_content

    tools = normalize_tools([WEATHER])
    assert tools_system_content(tools) == (
        "Answer the following questions as best as you can. You have access to the following tools:\n"
        + json.dumps([WEATHER], indent=4, ensure_ascii=False)
    )
