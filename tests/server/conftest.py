"""Fixtures for the server tests: the real model behind the real app (``fake_server`` and ``browser`` live in
tests/conftest.py, shared with the safety and reliability tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from glmkit.runtime.chat import EngineChatModel
from glmkit.server.app import create_app
from glmkit.server.auth import KeyStore
from glmkit.settings import Settings
from servers import serve


@pytest.fixture(scope="session")
def live_server(
    qwen: EngineChatModel, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The real embedded model behind the real app (open on loopback: no keys)."""
    home = tmp_path_factory.mktemp("glmkit-home")
    s = settings.model_copy(update={"home": home, "rate_limit_rpm": 0, "max_body_bytes": 256 * 1024})
    with serve(create_app(s, chat_model=qwen, keys=KeyStore(home / "api_keys.json"))) as url:
        yield url
