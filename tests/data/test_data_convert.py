"""Conversion into ChatGLM3's fine-tuning format: every input format, tool calls and observations, and
invalid records reported by line with a reason."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from glmkit.data.convert import (
    Problem,
    RecordError,
    convert_stream,
    csv_records,
    detect_format,
    json_records,
    to_chatglm3,
    validate,
)
from glmkit.runtime.formats.chatglm3 import TOOLS_PROMPT, tools_system_content
from glmkit.runtime.formats.tools import normalize_tools

WEATHER = {
    "name": "get_weather",
    "description": "查询城市天气",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
OPENAI_WEATHER = {"type": "function", "function": WEATHER}


def conv(record: dict[str, Any], fmt: str = "auto") -> list[dict[str, Any]]:
    out = to_chatglm3(record, fmt)  # type: ignore[arg-type]
    assert list(out) == ["conversations"]
    turns: list[dict[str, Any]] = out["conversations"]
    return turns


def call(city: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "metadata": "get_weather",
        "content": f'```python\ntool_call(city="{city}")\n```',
    }


def test_alpaca_with_input_history_and_system() -> None:
    record = {
        "system": "你是翻译助手",
        "history": [["在吗", "在的，请说"]],
        "instruction": "把下面的话翻译成英文",
        "input": "你好",
        "output": "Hello",
    }
    assert conv(record) == [
        {"role": "system", "content": "你是翻译助手"},
        {"role": "user", "content": "在吗"},
        {"role": "assistant", "content": "在的，请说"},
        {"role": "user", "content": "把下面的话翻译成英文\n你好"},
        {"role": "assistant", "content": "Hello"},
    ]
    assert conv({"instruction": "讲个笑话", "input": "", "output": "好的"}, "alpaca") == [
        {"role": "user", "content": "讲个笑话"},
        {"role": "assistant", "content": "好的"},
    ]


def test_sharegpt_with_tools_function_call_and_observation() -> None:
    record = {
        "conversations": [
            {"from": "human", "value": "北京今天天气怎么样？"},
            {
                "from": "function_call",
                "value": json.dumps({"name": "get_weather", "arguments": {"city": "北京"}}),
            },
            {"from": "observation", "value": '{"temperature": 22, "weather": "晴"}'},
            {"from": "gpt", "value": "北京今天晴，22度。"},
        ],
        "system": "你是天气助手",
        "tools": json.dumps([WEATHER], ensure_ascii=False),
    }
    turns = conv(record)
    assert turns[0] == {"role": "system", "content": f"你是天气助手\n{TOOLS_PROMPT}", "tools": [WEATHER]}
    assert turns[1:] == [
        {"role": "user", "content": "北京今天天气怎么样？"},
        call("北京"),
        {"role": "observation", "content": '{"temperature": 22, "weather": "晴"}'},
        {"role": "assistant", "content": "北京今天晴，22度。"},
    ]


def test_the_tools_system_turn_renders_exactly_like_chatglm3s_prompt() -> None:
    turns = conv(
        {
            "messages": [{"role": "user", "content": "天气"}, {"role": "assistant", "content": "好"}],
            "tools": [OPENAI_WEATHER],
        }
    )
    system = turns[0]
    # ChatGLM3's build_chat_input: content + "\n" + json.dumps(tools, indent=4, ensure_ascii=False)
    rendered = system["content"] + "\n" + json.dumps(system["tools"], indent=4, ensure_ascii=False)
    assert rendered == tools_system_content(normalize_tools([WEATHER]))


def test_openai_parallel_tool_calls_become_call_result_pairs_matched_by_id() -> None:
    record = {
        "messages": [
            {"role": "system", "content": "你是天气助手"},
            {"role": "user", "content": "北京和上海哪个热？"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "北京"}'},
                    },
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "上海"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c2", "content": '{"temperature": 30}'},
            {
                "role": "tool",
                "tool_call_id": "c1",
                "content": [{"type": "text", "text": '{"temperature": 22}'}],
            },
            {"role": "assistant", "content": "上海更热。"},
        ],
        "tools": [OPENAI_WEATHER],
    }
    assert conv(record)[1:] == [
        {"role": "user", "content": "北京和上海哪个热？"},
        call("上海"),
        {"role": "observation", "content": '{"temperature": 30}'},
        call("北京"),
        {"role": "observation", "content": '{"temperature": 22}'},
        {"role": "assistant", "content": "上海更热。"},
    ]


def test_openai_thought_before_a_call_and_the_code_interpreter() -> None:
    record = {
        "messages": [
            {"role": "user", "content": "算一下 2 的 10 次方"},
            {
                "role": "assistant",
                "content": "我用代码算。",
                "tool_calls": [{"function": {"name": "interpreter", "arguments": {"code": "print(2**10)"}}}],
            },
            {"role": "tool", "content": "1024"},
            {"role": "assistant", "content": "结果是 1024。"},
        ]
    }
    assert conv(record) == [
        {"role": "user", "content": "算一下 2 的 10 次方"},
        {"role": "assistant", "content": "我用代码算。"},
        {"role": "assistant", "metadata": "interpreter", "content": "```python\nprint(2**10)\n```"},
        {"role": "observation", "content": "1024"},
        {"role": "assistant", "content": "结果是 1024。"},
    ]


def test_chatglm3_records_pass_through_and_the_old_tool_role_is_converted() -> None:
    native = {
        "conversations": [
            {"role": "system", "content": TOOLS_PROMPT, "tools": [WEATHER]},
            {"role": "user", "content": "北京天气"},
            call("北京"),
            {"role": "observation", "content": "晴"},
            {"role": "assistant", "content": "晴天。"},
        ]
    }
    assert conv(native) == native["conversations"]
    named = {
        "conversations": [
            {"role": "user", "content": "北京天气"},
            {"role": "assistant", "name": "get_weather", "content": call("北京")["content"]},
            {"role": "observation", "content": "晴"},
            {"role": "assistant", "content": "晴天。"},
        ]
    }
    assert conv(named)[1] == call("北京")  # "name" on an assistant turn is read as ChatGLM3's metadata
    old = {
        "tools": [WEATHER],
        "conversations": [
            {"role": "user", "content": "北京天气"},
            {"role": "assistant", "content": "我查一下。"},
            {
                "role": "tool",
                "name": "get_weather",
                "parameters": {"city": "北京"},
                "observation": {"weather": "晴"},
            },
            {"role": "assistant", "content": "晴天。"},
        ],
    }
    assert conv(old)[2:5] == [
        {"role": "assistant", "content": "我查一下。"},
        call("北京"),
        {"role": "observation", "content": '{"weather": "晴"}'},
    ]


def test_format_detection() -> None:
    assert detect_format({"messages": []}) == "openai"
    assert detect_format({"conversations": [{"from": "human", "value": "x"}]}) == "sharegpt"
    assert detect_format({"conversations": [{"role": "user", "content": "x"}]}) == "chatglm3"
    assert detect_format({"instruction": "x", "output": "y"}) == "alpaca"
    with pytest.raises(RecordError, match="cannot tell the format"):
        detect_format({"text": "x"})


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"conversations": [{"from": "narrator", "value": "x"}]}, "from is 'narrator'"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "role is 'bot'"),
        ({"messages": []}, "empty"),
        ({"instruction": "翻译"}, "'output' is missing"),
        ({"instruction": "翻译", "output": 3}, "must be a string"),
        ({"instruction": "", "output": "好"}, "turn 1 (user) is empty"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b"},
                    {"role": "assistant", "content": "c"},
                ]
            },
            "two user turns",
        ),
        ({"messages": [{"role": "user", "content": "a"}]}, "must end with an assistant"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "tool", "content": "r"},
                    {"role": "assistant", "content": "c"},
                ]
            },
            "answers no tool call",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "assistant", "content": "b"},
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "c"},
                    {"role": "assistant", "content": "d"},
                ]
            },
            "system turn may only come first",
        ),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "must start with system or user"),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "get_weather", "arguments": "{bad"}}],
                    },
                ]
            },
            "not valid JSON",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "get_time", "arguments": "{}"}}],
                    },
                ],
                "tools": [OPENAI_WEATHER],
            },
            "not in the record's tools",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"city": 1}'}}],
                    },
                ],
                "tools": [OPENAI_WEATHER],
            },
            "should be string",
        ),
        (
            {
                "conversations": [
                    {"role": "user", "content": "a"},
                    {"role": "observation", "content": "r"},
                    {"role": "assistant", "content": "c"},
                ]
            },
            "must follow a tool call",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                    {"role": "assistant", "content": "c"},
                ]
            },
            "only text parts",
        ),
    ],
)
def test_invalid_records_say_why(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(RecordError, match=re.escape(reason)):
        to_chatglm3(record)


def test_validate_accepts_a_thought_then_a_call() -> None:
    validate(
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "想一想"},
            call("北京"),
            {"role": "observation", "content": "r"},
            {"role": "assistant", "content": "a"},
        ]
    )


def test_stream_reports_bad_lines_by_number_and_keeps_the_good_ones() -> None:
    lines = [
        json.dumps({"instruction": "你好", "output": "你好！"}, ensure_ascii=False),
        '{"instruction": "坏的 JSON", ',
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}),
        "",
        json.dumps({"conversations": []}),
        json.dumps(["not", "an", "object"]),
        json.dumps(
            {"conversations": [{"from": "human", "value": "在吗"}, {"from": "gpt", "value": "在"}]},
            ensure_ascii=False,
        ),
    ]
    results = list(convert_stream(json_records(enumerate(lines, 1))))
    problems = {n: r.reason for n, r in results if isinstance(r, Problem)}
    good = [n for n, r in results if not isinstance(r, Problem)]
    assert good == [1, 7]
    assert sorted(problems) == [2, 3, 5, 6]
    assert "not valid JSON" in problems[2] and "robot" in problems[3]
    assert "empty" in problems[5] and "expected a JSON object" in problems[6]


def test_csv_alpaca_with_a_quoted_multiline_field_reports_the_right_lines() -> None:
    text = 'instruction,input,output\n写一首诗,,"春眠不觉晓，\n处处闻啼鸟。"\n翻译,你好,\n问候,,你好\n'
    rows = list(csv_records(iter(text.splitlines(keepends=True))))
    assert [n for n, _ in rows] == [3, 4, 5]
    results = dict(convert_stream(rows, "alpaca"))
    first = results[3]
    assert not isinstance(first, Problem)
    assert first["conversations"][1]["content"] == "春眠不觉晓，\n处处闻啼鸟。"
    assert isinstance(results[4], Problem) and "turn 2 (assistant) is empty" in results[4].reason
    assert not isinstance(results[5], Problem)
