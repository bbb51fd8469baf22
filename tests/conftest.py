"""Shared fixtures. This file's directory is on sys.path, so test modules import helpers such as
``fakes`` and ``chatglm3_tiny`` by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# ---- begin: tiny ChatGLM3 checkpoint (tests/chatglm3_tiny.py) ---------------------------------------------
from chatglm3_tiny import TinyChatGLM3
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from glmkit.runtime.loaders import load_chat_model
from glmkit.server.app import create_app
from glmkit.server.auth import KeyStore
from glmkit.settings import DEFAULT_MODEL, Settings
from servers import SlowEngine, serve


@pytest.fixture(scope="session")
def chatglm3_tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyChatGLM3:
    """A random-weight ChatGLM3 in THUDM's layout (config.json, model.safetensors, tokenizer.model) and its
    GGUF, built once per session; torch is kept to one thread (2-core machines, DESIGN.md)."""
    import torch

    from chatglm3_tiny import build

    torch.set_num_threads(1)
    root: Path = tmp_path_factory.mktemp("chatglm3-tiny")
    return build(root)


# ---- end: tiny ChatGLM3 checkpoint -------------------------------------------------------------------------


# ---- the real embedded model, loaded once per session ------------------------------------------------------
@pytest.fixture(scope="session")
def settings() -> Settings:
    """1 thread (see DESIGN.md on thread collapse); 4 sequences so server tests decode concurrently."""
    return Settings(model=DEFAULT_MODEL, n_threads=1, n_ctx=2048, n_seq_max=4)


@pytest.fixture(scope="session")
def qwen(settings: Settings) -> Iterator[EngineChatModel]:
    m = load_chat_model(settings=settings)
    assert isinstance(m, EngineChatModel)
    yield m
    m.close()


# ---- apps on scripted engines, and the browser for console tests (shared by every test folder) ----------
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
