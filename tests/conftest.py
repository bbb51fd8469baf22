"""Shared fixtures. This file's directory is on sys.path, so test modules import helpers such as
``fakes`` and ``chatglm3_tiny`` by name."""

from __future__ import annotations

from pathlib import Path

import pytest

# ---- begin: tiny ChatGLM3 checkpoint (tests/chatglm3_tiny.py) ---------------------------------------------
from chatglm3_tiny import TinyChatGLM3


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
