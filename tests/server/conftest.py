"""Servers for the server tests: real uvicorn on a free loopback port, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from fakes import ScriptedEngine
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from glmkit.server.app import create_app
from glmkit.server.auth import KeyStore
from glmkit.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=10)
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not t.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(timeout=30)


@pytest.fixture(scope="session")
def live_server(
    qwen: EngineChatModel, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The real embedded model behind the real app (open on loopback: no keys)."""
    home = tmp_path_factory.mktemp("glmkit-home")
    s = settings.model_copy(update={"home": home, "rate_limit_rpm": 0, "max_body_bytes": 256 * 1024})
    with serve(create_app(s, chat_model=qwen, keys=KeyStore(home / "api_keys.json"))) as url:
        yield url


FakeServer = Callable[..., Any]


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[FakeServer]:
    """Start apps on a scripted engine: ``with fake_server(script, **settings) as (url, engine, keys)``."""

    @contextmanager
    def start(script: Any = ("你好！",), **overrides: Any) -> Iterator[tuple[str, ScriptedEngine, KeyStore]]:
        engine = ScriptedEngine(script, n_ctx=overrides.pop("n_ctx", 4096))
        model = EngineChatModel(engine, ChatGLM3Format(), name="fake")
        keys = KeyStore(tmp_path / "api_keys.json")
        s = Settings(home=tmp_path, **overrides)
        with serve(create_app(s, chat_model=model, keys=keys)) as url:
            yield url, engine, keys

    yield start
