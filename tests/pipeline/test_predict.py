"""glmkit eval predict: a model run over a ChatGLM3-format test set, then scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fakes import ScriptedEngine
from glmkit.cli import main
from glmkit.errors import InvalidRequestError
from glmkit.pipeline.predict import predict, read_test_set, write_predictions
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format


def conv(title: str, label: str, system: str | None = None) -> str:
    turns = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": f"新闻标题分类：{title}"},
        {"role": "assistant", "content": label},
    ]
    return json.dumps({"conversations": turns}, ensure_ascii=False)


def test_the_last_assistant_turn_is_the_reference_and_answers_keep_order(tmp_path: Path) -> None:
    data = tmp_path / "test.jsonl"
    data.write_text(
        "\n".join([conv("国足1比0取胜", "体育", "只回答类别"), conv("央行降准", "财经")]) + "\n", "utf-8"
    )
    items = read_test_set(data)
    assert [i.reference for i in items] == ["体育", "财经"] and [i.line for i in items] == [1, 2]
    assert [m.role for m in items[0].messages] == ["system", "user"]
    engine = ScriptedEngine(["\n体育"], n_ctx=512)
    preds = predict(EngineChatModel(engine, ChatGLM3Format(), name="fake"), items, concurrency=2)
    assert preds == ["体育", "体育"] and len(engine.prompts) == 2
    out = tmp_path / "preds.jsonl"
    write_predictions(out, items, preds)
    rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert rows[1] == {"line": 2, "prediction": "体育", "reference": "财经"}


def test_bad_test_sets_name_the_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"conversations": [{"role": "user", "content": "hi"}]}) + "\n", "utf-8")
    with pytest.raises(InvalidRequestError, match=r"bad.jsonl:1: the conversation ends with user"):
        read_test_set(data)
    data.write_text("{not json\n", "utf-8")
    with pytest.raises(InvalidRequestError, match=r"bad.jsonl:1: not valid JSON"):
        read_test_set(data)


def test_cli_predicts_with_a_real_model_and_scores(chatglm3_tiny: Any, tmp_path: Path, capsys: Any) -> None:
    data = tmp_path / "test.jsonl"
    data.write_text(
        "\n".join(conv(t, lab) for t, lab in [("国足取胜", "体育"), ("央行降准", "财经")]) + "\n", "utf-8"
    )
    out = tmp_path / "preds.jsonl"
    argv = [
        "eval",
        "predict",
        str(data),
        "--out",
        str(out),
        "--task",
        "classify",
        "-m",
        str(chatglm3_tiny.gguf),
    ]
    assert (
        main([*argv, "--max-tokens", "4", "--threads", "1", "--json", "--report", str(tmp_path / "r")]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    rows = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert [r["reference"] for r in rows] == ["体育", "财经"]
    correct = sum(r["prediction"] == r["reference"] for r in rows)
    assert report["accuracy"] == pytest.approx(correct / 2)  # scored from what the model really wrote
    assert (tmp_path / "r" / "report.html").exists()
