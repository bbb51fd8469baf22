"""Grammar-constrained decoding, tool_choice and logprobs on the real embedded model."""

import json
import math

import pytest

from glmkit.errors import InvalidRequestError
from glmkit.runtime.chat import EngineChatModel, collect, select_tools
from glmkit.runtime.formats.tools import normalize_tools
from glmkit.types import Constraint, LogprobDelta, Message, NamedTool, SamplingParams, TextDelta

TOOLS = normalize_tools(
    [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "查询指定城市今天的天气",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two numbers",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                    "required": ["a", "b"],
                },
            },
        },
    ]
)
GREEDY = SamplingParams(temperature=0, max_tokens=64)


def test_required_forces_a_schema_valid_call(qwen: EngineChatModel) -> None:
    r = collect(
        qwen.stream(
            [Message("user", "北京今天天气怎么样？")], tools=TOOLS, tool_choice="required", params=GREEDY
        )
    )
    assert r.finish_reason == "tool_calls" and r.text == ""
    (call,) = r.tool_calls
    assert call.name == "get_weather" and isinstance(call.arguments["city"], str)


def test_named_tool_is_called_even_for_small_talk(qwen: EngineChatModel) -> None:
    r = collect(
        qwen.stream([Message("user", "你好")], tools=TOOLS, tool_choice=NamedTool("add"), params=GREEDY)
    )
    (call,) = r.tool_calls
    assert call.name == "add" and set(call.arguments) == {"a", "b"}
    assert all(isinstance(v, (int, float)) for v in call.arguments.values())


def test_none_drops_tools_so_the_model_answers_in_text(qwen: EngineChatModel) -> None:
    r = collect(
        qwen.stream([Message("user", "北京今天天气怎么样？")], tools=TOOLS, tool_choice="none", params=GREEDY)
    )
    assert not r.tool_calls and r.text and r.finish_reason in ("stop", "length")


def test_json_schema_constraint_gives_parseable_matching_json(qwen: EngineChatModel) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    params = SamplingParams(
        temperature=0.7, seed=3, max_tokens=64, constraint=Constraint("json_schema", json.dumps(schema))
    )
    r = collect(qwen.stream([Message("user", "随便编一个人，给出名字和年龄。")], params=params))
    obj = json.loads(r.text)
    assert isinstance(obj["name"], str) and isinstance(obj["age"], int)


def test_json_object_constraint(qwen: EngineChatModel) -> None:
    params = SamplingParams(temperature=0, max_tokens=48, constraint=Constraint("json_object"))
    r = collect(qwen.stream([Message("user", "List two fruits.")], params=params))
    assert isinstance(json.loads(r.text), dict)


def test_bad_schema_is_a_request_error(qwen: EngineChatModel) -> None:
    params = SamplingParams(
        max_tokens=8, constraint=Constraint("json_schema", json.dumps({"type": "no-such-type"}))
    )
    with pytest.raises(InvalidRequestError):
        collect(qwen.stream([Message("user", "hi")], params=params))


def test_logprobs_are_log_probabilities_of_the_streamed_tokens(qwen: EngineChatModel) -> None:
    text = ""
    scored = []
    for d in qwen.stream(
        [Message("user", "Hi")], params=SamplingParams(temperature=0, max_tokens=6, logprobs=3)
    ):
        if isinstance(d, TextDelta):
            text += d.text
        elif isinstance(d, LogprobDelta):
            scored.extend(d.tokens)
    assert len(scored) == 6
    assert "".join(t.token for t in scored).strip() == text.strip()
    for t in scored:
        assert t.logprob <= 0 and len(t.top) == 3
        assert t.top[0][1] == pytest.approx(t.logprob)  # greedy: the chosen token is the most likely
        assert sum(math.exp(lp) for _, lp, _ in t.top) <= 1.0 + 1e-6


def test_select_tools_errors_name_the_problem() -> None:
    with pytest.raises(InvalidRequestError, match="nope"):
        select_tools(TOOLS, NamedTool("nope"))
    with pytest.raises(InvalidRequestError, match="at least one tool"):
        select_tools((), "required")
    assert select_tools(TOOLS, "none") == ()
