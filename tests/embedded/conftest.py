"""The real embedded model, loaded once per session (1 thread: see DESIGN.md on thread collapse)."""

from collections.abc import Iterator

import pytest

from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.models import load_chat_model
from glmkit.settings import DEFAULT_MODEL, Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(model=DEFAULT_MODEL, n_threads=1, n_ctx=2048, n_seq_max=2)


@pytest.fixture(scope="session")
def qwen(settings: Settings) -> Iterator[EngineChatModel]:
    m = load_chat_model(settings=settings)
    assert isinstance(m, EngineChatModel)
    yield m
    m.close()
