"""The server on the real embedded model, driven by the official ``openai`` client."""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
import numpy as np
import openai
import pytest

MODEL = "qwen2.5-coder-0.5b"
WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "查询指定城市今天的天气",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "城市名"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture
def client(live_server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_plain_chat(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "中国的首都是哪个城市？"}],
        temperature=0,
        max_tokens=32,
    )
    assert "北京" in (r.choices[0].message.content or "")
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and r.usage.prompt_tokens > 5 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_chat_matches_unstreamed(client: openai.OpenAI) -> None:
    msgs = [{"role": "user", "content": "用一句话介绍杭州。"}]
    whole = client.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=40, seed=7)
    pieces, finish, usage = [], None, None
    for chunk in client.chat.completions.create(
        model=MODEL,
        messages=msgs,
        temperature=0,
        max_tokens=40,
        seed=7,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            finish = c.finish_reason or finish
    assert len(pieces) > 3, "the answer must arrive in several chunks"
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_tool_call_auto(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "北京今天天气怎么样？"}],
        tools=WEATHER,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=64,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert "北京" in json.loads(call.function.arguments)["city"]


def test_tool_call_required_streamed(client: openai.OpenAI) -> None:
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "上海明天会下雨吗"}],
        tools=WEATHER,  # type: ignore[arg-type]
        tool_choice="required",
        temperature=0,
        max_tokens=64,
        stream=True,
    ):
        for c in chunk.choices:
            for tc in c.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"name": "", "arguments": "", "id": ""})
                slot["id"] += tc.id or ""
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
            finish = c.finish_reason or finish
    assert finish == "tool_calls"
    (call,) = calls.values()
    assert call["name"] == "get_weather" and isinstance(json.loads(call["arguments"])["city"], str)


def test_tool_choice_named_and_none(client: openai.OpenAI) -> None:
    named = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "你好"}],
        tools=WEATHER,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=48,
    )
    assert (named.choices[0].message.tool_calls or [])[0].function.name == "get_weather"
    none = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "北京今天天气怎么样？"}],
        tools=WEATHER,  # type: ignore[arg-type]
        tool_choice="none",
        temperature=0,
        max_tokens=32,
    )
    assert not none.choices[0].message.tool_calls and none.choices[0].message.content


def test_json_mode_and_schema(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "List two fruits as JSON."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=48,
    )
    assert isinstance(json.loads(r.choices[0].message.content or ""), dict)
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population_millions": {"type": "number"}},
        "required": ["city", "population_millions"],
    }
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "给出一个中国城市和它的人口（百万）。"}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        temperature=0,
        max_tokens=48,
    )
    obj = json.loads(r.choices[0].message.content or "")
    assert isinstance(obj["city"], str) and isinstance(obj["population_millions"], (int, float))


def test_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Hi"}],
        temperature=0,
        max_tokens=5,
        logprobs=True,
        top_logprobs=2,
    )
    lp = r.choices[0].logprobs
    assert lp is not None and lp.content and len(lp.content) == 5
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in lp.content)
    assert "".join(t.token for t in lp.content).strip() == (r.choices[0].message.content or "").strip()


def test_completions(client: openai.OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", temperature=0, max_tokens=8)
    assert "5" in r.choices[0].text
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=MODEL, prompt="1, 2, 3, 4,", temperature=0, max_tokens=8, stream=True
        )
        if c.choices
    )
    assert streamed == r.choices[0].text


def test_embeddings(client: openai.OpenAI) -> None:
    r = client.embeddings.create(
        model="multilingual-e5-small", input=["如何申请退款", "退款怎么办理", "今天天气很好"]
    )
    v = np.array([d.embedding for d in r.data])
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.05, sim  # paraphrase beats unrelated
    assert r.usage.prompt_tokens > 0
    b64 = client.embeddings.create(
        model="multilingual-e5-small", input="如何申请退款", encoding_format="base64"
    )
    raw = b64.data[0].embedding  # asked for explicitly, the client hands the base64 text over as is
    assert isinstance(raw, str)
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(raw), dtype="<f4"), v[0], atol=1e-6)


def test_models(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert ids == {MODEL, "multilingual-e5-small"}
    assert client.models.retrieve(MODEL).id == MODEL


def test_bad_requests_get_the_right_4xx_and_the_server_keeps_serving(
    client: openai.OpenAI, live_server: str
) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    raw = httpx.post(
        live_server + "/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "invalid_json"
    with pytest.raises(openai.UnprocessableEntityError) as e422:
        client.chat.completions.create(model=MODEL, messages=msgs, temperature="hot")  # type: ignore[arg-type]
    assert e422.value.body["param"] == "temperature"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError, match=r"available: qwen2\.5-coder-0\.5b"):
        client.chat.completions.create(model="gpt-9", messages=msgs)  # type: ignore[arg-type]
    with pytest.raises(openai.APIStatusError) as big:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "长" * 300_000}])
    assert big.value.status_code == 413
    with pytest.raises(openai.BadRequestError) as ctx:
        client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=100_000)
    assert ctx.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="tools"):
        client.chat.completions.create(
            model=MODEL,
            messages=msgs,
            tools=[{"type": "function", "function": {"name": "f", "parameters": "not a schema"}}],  # type: ignore[list-item, typeddict-item]
        )
    with pytest.raises(openai.BadRequestError, match="unrecognized request argument"):
        client.chat.completions.create(model=MODEL, messages=msgs, extra_body={"no_such_field": 1})
    ok = client.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=4)
    assert ok.choices[0].message.content


def test_client_disconnect_frees_its_slot(live_server: str) -> None:
    # the schema asks for at least 800 numbers (>= 1,600 tokens), so the reply cannot end by itself
    # within max_tokens whatever the model writes: only the client hanging up can free the slot early
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 800}
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "从1数到1000，写成JSON数组。"}],
        "max_tokens": 1500,
        "temperature": 0,
        "stream": True,
        "response_format": {"type": "json_schema", "json_schema": {"name": "numbers", "schema": schema}},
    }
    with httpx.stream("POST", live_server + "/v1/chat/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        # next(), not a for-loop with break: leaving httpx's line iterator closes the connection, and
        # the check below would race the server noticing that
        got = [next(lines) for _ in range(7)]
        assert any('"content": "["' in line for line in got), got
        assert httpx.get(live_server + "/health").json()["active"] >= 1
    # leaving the block hangs up mid-reply
    deadline = time.monotonic() + 10
    while httpx.get(live_server + "/health").json()["active"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(live_server + "/health").json()["active"] == 0


def test_concurrent_requests_decode_together(live_server: str) -> None:
    """Four streams at once: the engine's active count reaches several sequences (not one behind a lock)."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "写一首关于秋天的短诗。"}],
        "max_tokens": 48,
    }
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, httpx.get(live_server + "/health").json()["active"])
            time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    results: list[int] = []

    def one() -> None:
        results.append(httpx.post(live_server + "/v1/chat/completions", json=body, timeout=120).status_code)

    ts = [threading.Thread(target=one) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    done.set()
    w.join()
    assert results == [200] * 4
    assert peak >= 3, peak
    metrics = httpx.get(live_server + "/metrics").text
    assert 'glmkit_requests_total{route="/v1/chat/completions",status="200"}' in metrics
    assert "glmkit_time_to_first_token_seconds_count" in metrics and "glmkit_active_sequences" in metrics


def test_a_remote_embedder_reads_glmkits_own_embeddings_route(live_server: str) -> None:
    from glmkit.kb.embed import load_embedder

    remote = load_embedder(f"openai:{live_server}#multilingual-e5-small")
    local = load_embedder()
    assert remote.dim == 384
    v = remote.embed(["如何申请退款"], "query")
    np.testing.assert_allclose(v[0], local.embed(["如何申请退款"], "query")[0], atol=1e-5)
