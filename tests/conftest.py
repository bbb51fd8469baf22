"""Shared fixtures. This file's directory is on sys.path, so test modules import helpers such as
``fakes`` and ``chatglm3_tiny`` by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# ---- begin: tiny ChatGLM3 checkpoint (tests/chatglm3_tiny.py) ---------------------------------------------
from chatglm3_tiny import TinyChatGLM3
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.models import load_chat_model
from glmkit.settings import DEFAULT_MODEL, Settings


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
