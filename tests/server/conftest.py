"""Fixtures for the server tests: the real model behind the real app, and apps on scripted engines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from glmkit.server.app import create_app
from glmkit.server.auth import KeyStore
from glmkit.settings import Settings
from servers import SlowEngine, serve


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
    def start(script: Any = ("你好！",), **overrides: Any) -> Iterator[tuple[str, SlowEngine, KeyStore]]:
        engine = SlowEngine(script, n_ctx=overrides.pop("n_ctx", 4096), delay=overrides.pop("delay", 0.0))
        model = EngineChatModel(engine, ChatGLM3Format(), name="fake")
        keys = KeyStore(tmp_path / "api_keys.json")
        s = Settings(home=tmp_path, **overrides)
        with serve(create_app(s, chat_model=model, keys=keys)) as url:
            yield url, engine, keys

    yield start


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright, shared by the console tests (setup.sh installs it)."""
    from playwright.sync_api import sync_playwright

    from browser import CHROMIUM, LAUNCH_ARGS

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()
