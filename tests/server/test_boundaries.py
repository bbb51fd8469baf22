"""Keys, rate limits, body limits, CORS and error shapes, on a scripted engine (fast)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from glmkit.cli import main
from glmkit.server.app import CONSOLE
from glmkit.server.auth import KeyStore

CHAT = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


def test_keys_are_stored_hashed_and_required_once_they_exist(fake_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with fake_server() as (url, _, keys):
        assert (
            httpx.post(url + "/v1/chat/completions", json=CHAT).status_code == 200
        )  # no keys: open on loopback
        rec, key = keys.add("alice")
        assert (
            key not in (tmp_path / "api_keys.json").read_text()
            and rec.sha256 in (tmp_path / "api_keys.json").read_text()
        )
        r = httpx.post(url + "/v1/chat/completions", json=CHAT)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        bad = httpx.post(
            url + "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer gk-wrong"}
        )
        assert bad.status_code == 401
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        assert client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "hi"}]
        ).choices
        assert httpx.get(url + "/metrics").status_code == 401
        assert httpx.get(url + "/health").status_code == 200  # liveness stays open
        keys.add("bob")
        keys.revoke("alice")
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}])


def test_rate_limit_answers_429_with_retry_after(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server(rate_limit_rpm=3) as (url, _, _keys):
        codes = [httpx.post(url + "/v1/chat/completions", json=CHAT) for _ in range(5)]
        assert [r.status_code for r in codes] == [200, 200, 200, 429, 429]
        assert int(codes[3].headers["retry-after"]) >= 1
        assert codes[3].json()["error"]["code"] == "rate_limit_exceeded"


def test_body_limit_from_content_length_and_from_a_chunked_body(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server(max_body_bytes=2048) as (url, _, _keys):
        big = dict(CHAT, messages=[{"role": "user", "content": "x" * 5000}])
        r = httpx.post(url + "/v1/chat/completions", json=big)
        assert r.status_code == 413 and "2048" in r.json()["error"]["message"]

        def chunks() -> Iterator[bytes]:
            yield json.dumps(big).encode()[:1500]
            yield json.dumps(big).encode()[1500:]

        r = httpx.post(
            url + "/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        assert httpx.post(url + "/v1/chat/completions", json=CHAT).status_code == 200


def test_cors_is_off_by_default_and_exact_when_configured(fake_server) -> None:  # type: ignore[no-untyped-def]
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with fake_server() as (url, _, _keys):
        r = httpx.options(url + "/v1/chat/completions", headers=pre)
        assert "access-control-allow-origin" not in r.headers
    with fake_server(cors_origins=["https://app.example"]) as (url, _, _keys):
        r = httpx.options(url + "/v1/chat/completions", headers=pre)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = httpx.options(url + "/v1/chat/completions", headers=dict(pre, Origin="https://evil.example"))
        assert r.headers.get("access-control-allow-origin") != "https://evil.example"


def test_error_shape_for_unknown_routes_and_bad_messages(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server() as (url, _, _keys):
        r = httpx.get(url + "/v1/nothing")
        assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
        r = httpx.post(
            url + "/v1/chat/completions", json=dict(CHAT, messages=[{"role": "wizard", "content": "x"}])
        )
        assert r.status_code == 400 and "role" in r.json()["error"]["message"]
        r = httpx.post(url + "/v1/chat/completions", json=dict(CHAT, n=2))
        assert r.status_code == 422 and r.json()["error"]["param"] == "n"
        r = httpx.post(url + "/v1/embeddings", json={"model": "fake", "input": "x"})
        assert r.status_code == 404
        r = httpx.post(url + "/v1/chat/completions", json=dict(CHAT, tool_choice="required"))
        assert r.status_code == 400 and "at least one tool" in r.json()["error"]["message"]


def test_console_is_served_locally(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server() as (url, _, _keys):
        html = httpx.get(url + "/").text
        assert '<script type="module" src="/console/js/main.js">' in html
        assert "http://" not in html.replace("http://127.0.0.1", "")
        # every module of the console is served as JavaScript (a module with another type is refused)
        modules = sorted((CONSOLE / "js").glob("*.js"))
        assert len(modules) > 10
        for path in modules:
            r = httpx.get(url + f"/console/js/{path.name}")
            assert r.status_code == 200 and "javascript" in r.headers["content-type"], path.name
            text = r.text.replace('"http://www.w3.org/2000/svg"', "")  # a namespace name, never fetched
            assert "http://" not in text and "https://" not in text, path.name


def test_cli_keys_and_serve_refuses_public_bind_without_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GLMKIT_HOME", str(tmp_path))
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 1
    assert "API key" in capsys.readouterr().err
    assert main(["keys", "add", "bob", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (
        out["key"].startswith("gk-")
        and KeyStore(tmp_path / "api_keys.json").check("Bearer " + out["key"]).name == "bob"
    )
    assert main(["keys", "list", "--json"]) == 0
    assert [k["name"] for k in json.loads(capsys.readouterr().out)] == ["bob"]
    assert main(["keys", "revoke", "bob"]) == 0
    assert not KeyStore(tmp_path / "api_keys.json")


def test_request_timeout_is_504_and_stops_the_generation(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server(("\n" + "一" * 200,), delay=0.05, request_timeout=0.5) as (url, engine, _keys):
        r = httpx.post(url + "/v1/chat/completions", json=dict(CHAT, max_tokens=200))
        assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
        deadline = time.monotonic() + 5
        while engine.active and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.active == 0  # the generation was cancelled, not left running
        # streamed: headers are out, so the timeout arrives in-band before [DONE]
        with httpx.stream(
            "POST", url + "/v1/chat/completions", json=dict(CHAT, max_tokens=200, stream=True)
        ) as s:
            lines = [x for x in s.iter_lines() if x.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and json.loads(lines[-2][6:])["error"]["code"] == "timeout"


def test_full_queue_answers_503(fake_server) -> None:  # type: ignore[no-untyped-def]
    with fake_server(max_queue=2) as (url, engine, _keys):
        engine.waiting = 2
        r = httpx.post(url + "/v1/chat/completions", json=CHAT)
        assert r.status_code == 503 and r.json()["error"]["code"] == "overloaded"
        engine.waiting = 0
        assert httpx.post(url + "/v1/chat/completions", json=CHAT).status_code == 200


def test_shutdown_drains_in_flight_streams(tmp_path: Path) -> None:
    from glmkit.runtime.chat import EngineChatModel
    from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
    from glmkit.server.app import create_app
    from glmkit.settings import Settings
    from peers import free_port
    from servers import SlowEngine

    engine = SlowEngine(("一二三四五六七八九十",), n_ctx=512, delay=0.1)
    app = create_app(
        Settings(home=tmp_path), chat_model=EngineChatModel(engine, ChatGLM3Format(), name="fake")
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=10)
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.02)
    text = ""
    with httpx.stream(
        "POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=dict(CHAT, stream=True)
    ) as s:
        for line in s.iter_lines():
            if line.startswith("data: {"):
                obj = json.loads(line[6:])
                for c in obj["choices"]:
                    text += c["delta"].get("content") or ""
                    if text and not server.should_exit:
                        server.should_exit = True  # shut down while this stream is mid-way
    t.join(timeout=30)
    assert text == "一二三四五六七八九十"  # the in-flight reply finished before the server stopped
