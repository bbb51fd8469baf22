"""The YAML config: defaults, relative paths, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_samples import ConfigMaker

from glmkit.errors import InvalidRequestError
from glmkit.train.config import load_config, parse_config

BASE = {"method": "lora", "data": "d.jsonl", "output_dir": "out", "max_steps": 10}


def _error(**changes: object) -> InvalidRequestError:
    raw = {**BASE, **changes}
    with pytest.raises(InvalidRequestError) as e:
        parse_config({k: v for k, v in raw.items() if v is not None})
    return e.value


def test_defaults_and_relative_paths(make_config: ConfigMaker, tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("{}\n")
    cfg = load_config(make_config(data="d.jsonl", output_dir="runs/a", model="weights/m.gguf"))
    assert cfg.data == tmp_path / "d.jsonl"
    assert cfg.output_dir == tmp_path / "runs/a"
    assert cfg.model == str(tmp_path / "weights/m.gguf")
    assert cfg.peak_lr == 0.01
    assert cfg.lora_settings.r == 8 and cfg.lora_settings.alpha == 16
    assert cfg.eval_interval == cfg.save_every
    assert parse_config(BASE).model == "default"
    assert parse_config({**BASE, "method": "full"}).peak_lr == 2e-5


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"learning_rate": 0.1}, "learning_rate", "unknown key"),
        ({"lr": 0}, "lr", "greater than 0"),
        ({"lr": -1e-4}, "lr", "greater than 0"),
        ({"method": "qlora"}, "method", "lora, ptuning, full, pretrain"),
        ({"lora": {"r": 0}}, "lora.r", "greater than or equal to 1"),
        ({"lora": {"r": 8, "rank": 4}}, "lora.rank", "unknown key"),
        ({"lora": {"dropout": 1.0}}, "lora.dropout", "less than 1"),
        ({"max_steps": 0}, "max_steps", "greater than or equal to 1"),
        ({"max_steps": None}, "max_steps", "required"),
        ({"batch_size": "two"}, "batch_size", "integer"),
        ({"warmup": 10}, "warmup", "less than max_steps"),
        ({"method": "full", "lora": {"r": 4}}, "lora", "method is 'full'"),
        ({"ptuning": {"num_virtual_tokens": 8}}, "ptuning", "method is 'lora'"),
        ({"ptuning": {"num_virtual_tokens": 0}, "method": "ptuning"}, "ptuning.num_virtual_tokens", ">= 1"),
        ({"eval_every": 5}, "eval_every", "no eval_data"),
    ],
)
def test_errors_name_the_field(changes: dict[str, object], field: str, words: str) -> None:
    err = _error(**changes)
    assert err.param == field
    assert f"{field}:" in err.message
    if words == ">= 1":
        assert "greater than or equal to 1" in err.message
    else:
        assert words in err.message


def test_file_level_errors(tmp_path: Path, make_config: ConfigMaker) -> None:
    with pytest.raises(InvalidRequestError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- method: lora\n")
    with pytest.raises(InvalidRequestError, match="YAML mapping"):
        load_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("method: [lora\n")
    with pytest.raises(InvalidRequestError, match="not valid YAML"):
        load_config(broken)
    with pytest.raises(InvalidRequestError, match="data: file not found") as e:
        load_config(make_config(data="missing.jsonl"))
    assert e.value.param == "data"
