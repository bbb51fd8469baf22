"""Fixtures for the training tests: a tiny Qwen2 (HF directory and GGUF), conversation files and configs.
Shared values live in ``train_samples`` (a unique module name: several test folders have a conftest).

Everything is tiny and random (hidden 32/64, 2 layers); torch runs on one thread (2-core machines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from train_samples import CONVERSATIONS, ConfigMaker


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qwen2_tiny import write_checkpoint

    return write_checkpoint(tmp_path_factory.mktemp("qwen2") / "qwen2-tiny")


@pytest.fixture(scope="session")
def qwen2_gguf(qwen2_dir: Path) -> Path:
    """The tiny Qwen2 as an f32 GGUF written by glmkit's own qwen2 writer."""
    import torch
    from transformers import AutoModelForCausalLM

    from glmkit.train.gguf_export import write_qwen2_from_hf

    model = AutoModelForCausalLM.from_pretrained(str(qwen2_dir), dtype=torch.float32)
    out = qwen2_dir.parent / "qwen2-tiny.f32.gguf"
    write_qwen2_from_hf(model.config, qwen2_dir, dict(model.state_dict()), out, "f32")
    return out


@pytest.fixture(scope="session")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("data") / "train.jsonl"
    p.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in CONVERSATIONS), encoding="utf-8")
    return p


@pytest.fixture
def make_config(tmp_path: Path, data_file: Path) -> ConfigMaker:
    """Write a YAML config into tmp_path; keyword arguments override the defaults."""

    def make(name: str = "train.yaml", **overrides: Any) -> Path:
        cfg: dict[str, Any] = {
            "method": "lora",
            "data": str(data_file),
            "output_dir": str(tmp_path / "run"),
            "max_steps": 4,
            "batch_size": 2,
            "lr": 0.01,
            "save_every": 2,
            "seed": 7,
        }
        cfg.update(overrides)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        return path

    return make
