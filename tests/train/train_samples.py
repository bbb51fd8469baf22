"""Values shared by the training tests: tool schema, four conversations in ChatGLM3's format, and the type of
the ``make_config`` fixture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

TOOLS = [
    {
        "name": "get_weather",
        "description": "Get the current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]

CONVERSATIONS: list[dict[str, Any]] = [
    {
        "conversations": [
            {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "你好，我是人工智能助手。"},
        ]
    },
    {
        "conversations": [
            {"role": "system", "content": "你是一个天气助手"},
            {"role": "user", "content": "今天天气怎么样？"},
            {"role": "assistant", "content": "北京今天的天气很好。"},
            {"role": "user", "content": "明天呢？"},
            {"role": "assistant", "content": "明天也很好。"},
        ]
    },
    {
        "conversations": [
            {
                "role": "system",
                "content": "Answer the following questions as best as you can. You have access to the following tools:",
                "tools": TOOLS,
            },
            {"role": "user", "content": "北京天气怎么样？"},
            {
                "role": "assistant",
                "metadata": "get_weather",
                "content": '```python\ntool_call(city="北京")\n```',
            },
            {"role": "observation", "content": '{"temperature": 25}'},
            {"role": "assistant", "content": "北京现在25度。"},
        ]
    },
    {
        "conversations": [
            {"role": "user", "content": "Hello, how are you today?"},
            {"role": "assistant", "content": "The quick brown fox jumps over the lazy dog."},
        ]
    },
]

ConfigMaker = Callable[..., Path]
