"""The openai backend against a real OpenAI-compatible server (llama-cpp-python's), and edge cases that a
real server will not produce on demand (malformed SSE, errors) through an httpx transport fake."""

import json
from collections.abc import Iterator

import httpx
import pytest

from glmkit.errors import BackendError, InvalidRequestError, ModelNotFoundError
from glmkit.runtime.backends.openai import OpenAIChatModel
from glmkit.runtime.chat import collect
from glmkit.runtime.loaders import load_chat_model
from glmkit.runtime.models import verify_embedded
from glmkit.settings import Settings
from glmkit.types import Message, SamplingParams, ToolCall
from peers import llama_cpp_server

GREEDY = SamplingParams(temperature=0, max_tokens=40)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    path = verify_embedded("qwen2.5-coder-0.5b", Settings().models_dir)
    with llama_cpp_server(str(path)) as base:
        yield base


def test_chat_mode_against_real_server(server: str) -> None:
    model = load_chat_model(f"openai:{server}#qwen")
    try:
        res = collect(model.stream([Message("user", "中国的首都是哪里？")], params=GREEDY))
    finally:
        model.close()
    assert "北京" in res.text
    assert res.finish_reason in ("stop", "length")


def test_completions_mode_renders_glmkit_prompt(server: str) -> None:
    # glmkit formats the prompt itself (here the model's own template) and parses the reply locally
    from glmkit.runtime.formats.jinja import JinjaFormat

    local = load_chat_model(settings=Settings(n_threads=1, n_ctx=1024))
    template = local.engine.info.chat_template  # type: ignore[attr-defined]
    local.close()
    model = OpenAIChatModel(server, "qwen")
    model.format = JinjaFormat(template)
    try:
        res = collect(model.stream([Message("user", "请只回答城市名：中国的首都是哪里？")], params=GREEDY))
    finally:
        model.close()
    assert "北京" in res.text


def sse(*events: object) -> bytes:
    return b"".join(f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n".encode() for e in events)


def fake(handler) -> OpenAIChatModel:  # type: ignore[no-untyped-def]
    return OpenAIChatModel("http://peer.test/v1", "m", transport=httpx.MockTransport(handler))


def test_streamed_tool_call_fragments_are_assembled() -> None:
    body = sse(
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_9",
                                "function": {"name": "get_weather", "arguments": '{"ci'},
                            }
                        ]
                    }
                }
            ]
        },
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "北京"}'}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7}},
        "[DONE]",
    )
    seen = {}

    def handler(req: httpx.Request) -> httpx.Response:
        seen.update(json.loads(req.content))
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    res = collect(fake(handler).stream([Message("user", "天气")], params=GREEDY))
    assert res.tool_calls == [ToolCall("get_weather", {"city": "北京"}, "call_9")]
    assert res.finish_reason == "tool_calls" and (res.prompt_tokens, res.completion_tokens) == (11, 7)
    assert seen["temperature"] == 0 and seen["stream"] is True


def test_server_errors_map_to_glmkit_errors() -> None:
    def not_found(req: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {"message": "model 'm' not found"}})

    with pytest.raises(ModelNotFoundError, match="model 'm' not found"):
        collect(fake(not_found).stream([Message("user", "x")]))

    def bad(req: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "max_tokens too large"}})

    with pytest.raises(InvalidRequestError, match="max_tokens too large"):
        collect(fake(bad).stream([Message("user", "x")]))

    def garbage(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"data: {not json\n\n")

    with pytest.raises(BackendError, match="malformed SSE"):
        collect(fake(garbage).stream([Message("user", "x")]))


def test_unreachable_server_is_a_clear_error() -> None:
    model = OpenAIChatModel("http://127.0.0.1:9/v1", "m", timeout=2)
    with pytest.raises(BackendError, match=r"cannot reach http://127\.0\.0\.1:9/v1"):
        collect(model.stream([Message("user", "x")]))
