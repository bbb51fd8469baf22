"""Training runs on tiny random models: the loss falls, each method trains exactly its parameters, a killed
run resumes to the same weights, and bad data is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from train_samples import ConfigMaker

from chatglm3_tiny import TinyChatGLM3
from glmkit.errors import InvalidRequestError
from glmkit.train import checkpoint as ck
from glmkit.train.config import load_config
from glmkit.train.loop import lr_factor, run
from glmkit.train.model import load_base


def _base_weights(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(before: dict[str, Any], model: Any) -> set[str]:
    import torch

    after = model.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


def test_lr_schedule() -> None:
    assert [lr_factor(s, 2, 6) for s in range(6)] == [0.5, 1.0, 1.0, 0.75, 0.5, 0.25]
    assert lr_factor(0, 0, 4) == 1.0 and lr_factor(3, 0, 4) == 0.25


def test_lora_memorises_four_conversations(qwen2_dir: Path, make_config: ConfigMaker, tmp_path: Path) -> None:
    cfg = load_config(
        make_config(
            model=str(qwen2_dir),
            max_steps=30,
            lr=0.02,
            batch_size=4,
            save_every=30,
            log_every=10,
            eval_data=str(load_config(make_config()).data),
            lora={
                "r": 8,
                "alpha": 16,
                "dropout": 0.0,
                "target_modules": [
                    "q_proj",
                    "k_proj",
                    "v_proj",
                    "o_proj",
                    "gate_proj",
                    "up_proj",
                    "down_proj",
                ],
            },
        )
    )
    base = load_base(cfg.model)
    before = _base_weights(base.model)
    result = run(cfg, base=base, progress=None)
    assert result.steps == 30 and result.first_loss is not None and result.last_loss is not None
    assert result.last_loss < 0.15 * result.first_loss, (result.first_loss, result.last_loss)  # 7.8 -> 0.5
    assert result.eval_loss is not None and result.eval_loss < 0.15 * result.first_loss
    # base weights untouched: only lora_A / lora_B exist as new, trained tensors
    trained = ck.latest_checkpoint(cfg.output_dir)
    assert trained is not None and trained.step == 30
    names = set(trained.trainable())
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    unwrapped = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v
        for k, v in base.model.state_dict().items()
    }
    import torch

    assert all(torch.equal(v, unwrapped[k]) for k, v in before.items())
    log = [json.loads(x) for x in (cfg.output_dir / ck.LOG_FILE).read_text().splitlines()]
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == [10, 20, 30]
    assert steps[-1]["loss"] < steps[0]["loss"]  # the mean over each window of 10 steps falls
    assert all(r["tokens"] > 0 and r["tokens_per_s"] > 0 and r["lr"] > 0 for r in steps)
    assert [r["step"] for r in log if "eval_loss" in r] == [0, 30]  # before the first step, and at the end
    assert result.start_eval_loss is not None and result.eval_loss < 0.15 * result.start_eval_loss
    assert (cfg.output_dir / "adapter" / "adapter_config.json").is_file()  # a standard PEFT adapter too
    described = json.loads((cfg.output_dir / ck.RUN_FILE).read_text())
    assert described["data"]["examples"] == 4 and described["base"]["format"] == "jinja"


def test_ptuning_trains_only_the_prefix(chatglm3_tiny: TinyChatGLM3, make_config: ConfigMaker) -> None:
    cfg = load_config(
        make_config(model=str(chatglm3_tiny.checkpoint), method="ptuning", ptuning={"num_virtual_tokens": 4})
    )
    base = load_base(cfg.model)
    before = _base_weights(base.model)
    result = run(cfg, base=base, progress=None)
    assert (
        result.steps == 4 and result.trainable_params == 4 * 2 * 2 * 2 * 16
    )  # tokens × layers × k,v × groups × dim
    trained = ck.latest_checkpoint(cfg.output_dir)
    assert trained is not None
    assert list(trained.trainable()) == ["prompt_encoder.default.embedding.weight"]
    unwrapped = {k.removeprefix("base_model."): v for k, v in base.model.state_dict().items()}
    import torch

    assert all(torch.equal(v, unwrapped[k]) for k, v in before.items())


def test_full_trains_every_weight(qwen2_dir: Path, make_config: ConfigMaker) -> None:
    cfg = load_config(make_config(model=str(qwen2_dir), method="full", lr=1e-3, max_steps=2))
    base = load_base(cfg.model)
    before = _base_weights(base.model)
    result = run(cfg, base=base, progress=None)
    assert result.trainable_params == result.total_params
    # the embedding rows of tokens no example uses get no gradient, but every other tensor moves
    assert _changed(before, base.model) == set(before)


def test_pretrain_packs_text_and_learns(qwen2_dir: Path, make_config: ConfigMaker, tmp_path: Path) -> None:
    text = tmp_path / "corpus.txt"
    text.write_text(
        "北京今天的天气很好，气温二十五度。\n我们一起学习机器学习。\n\n" * 6 + "The quick brown fox.\n"
    )
    cfg = load_config(
        make_config(
            model=str(qwen2_dir), method="pretrain", data=str(text), lr=3e-3, max_steps=8, max_seq_len=32
        )
    )
    result = run(cfg, progress=None)
    described = json.loads((cfg.output_dir / ck.RUN_FILE).read_text())
    assert described["data"]["records"] == 7  # six repeated paragraphs + the last line
    assert described["data"]["examples"] >= 4
    assert result.last_loss is not None and result.first_loss is not None
    assert result.last_loss < result.first_loss


def test_resume_after_a_kill_gives_the_same_weights(
    qwen2_dir: Path, make_config: ConfigMaker, tmp_path: Path
) -> None:
    import torch

    common = {
        "model": str(qwen2_dir),
        "max_steps": 6,
        "save_every": 3,
        "warmup": 2,
        "grad_accum": 2,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.3},  # dropout: the RNG state must be restored too
    }
    whole = load_config(make_config("a.yaml", output_dir=str(tmp_path / "a"), **common))
    run(whole, progress=None)

    killed = load_config(make_config("b.yaml", output_dir=str(tmp_path / "b"), **common))

    def die(step: int) -> None:
        if step == 5:  # after checkpoint 3 and two more (unsaved, logged) steps
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(killed, on_step=die, progress=None)
    assert ck.latest_checkpoint(killed.output_dir).step == 3  # type: ignore[union-attr]
    resumed = run(killed, resume=True, progress=None)
    assert resumed.resumed_from == 3 and resumed.steps == 6

    a = ck.latest_checkpoint(whole.output_dir).trainable()  # type: ignore[union-attr]
    b = ck.latest_checkpoint(killed.output_dir).trainable()  # type: ignore[union-attr]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (killed.output_dir / ck.LOG_FILE).read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # the killed run's lines past its checkpoint were dropped
    assert [c.step for c in ck.list_checkpoints(killed.output_dir)] == [3, 6]
    assert not [p for p in (killed.output_dir / ck.CHECKPOINTS).iterdir() if p.name.startswith(".")]


def test_run_directory_rules(qwen2_dir: Path, make_config: ConfigMaker, tmp_path: Path) -> None:
    cfg = load_config(make_config(model=str(qwen2_dir), max_steps=2))
    run(cfg, progress=None)
    with pytest.raises(InvalidRequestError, match="already holds a run: pass --resume"):
        run(cfg, progress=None)
    changed = load_config(make_config(model=str(qwen2_dir), max_steps=2, lr=0.5))
    with pytest.raises(InvalidRequestError, match=r"config changed \(lr\)") as e:
        run(changed, resume=True, progress=None)
    assert e.value.param == "lr"


BAD_LINES = [
    "not json at all",
    json.dumps(
        {"conversations": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    ),
    json.dumps({"conversations": [{"role": "user", "content": "hi"}]}),
    json.dumps({"messages": []}),
    json.dumps(
        {
            "conversations": [
                {"role": "user", "content": "hi"},
                {"role": "observation", "content": "{}"},
                {"role": "assistant", "content": "ok"},
            ]
        }
    ),
]


def test_bad_data_lines_are_named_and_nothing_is_written(
    qwen2_dir: Path, make_config: ConfigMaker, tmp_path: Path, data_file: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    good = data_file.read_text().splitlines()[0]
    bad.write_text("\n".join([good, *BAD_LINES, good]) + "\n")
    cfg = load_config(make_config(model=str(qwen2_dir), data=str(bad)))
    with pytest.raises(InvalidRequestError) as e:
        run(cfg, progress=None)
    msg = e.value.message
    assert e.value.param == "data" and "5 bad line(s)" in msg
    for line, words in [
        (2, "not valid JSON"),
        (3, "'human'"),
        (4, "must end with an assistant turn"),
        (5, '{"conversations"'),
        (6, "must follow a tool call"),
    ]:
        assert f"{bad}:{line}: " in msg and words in msg.split(f"{bad}:{line}: ")[1].splitlines()[0], (
            line,
            msg,
        )
    assert not cfg.output_dir.exists()

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(InvalidRequestError, match="holds no conversations"):
        run(load_config(make_config(model=str(qwen2_dir), data=str(empty))), progress=None)
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "ok"}\n{"text": 3}\n')
    with pytest.raises(InvalidRequestError, match=r"texts.jsonl:2: expected \{\"text\""):
        run(load_config(make_config(model=str(qwen2_dir), data=str(texts), method="pretrain")), progress=None)
    assert not cfg.output_dir.exists()


def test_bad_lora_targets_name_the_layers(qwen2_dir: Path, make_config: ConfigMaker) -> None:
    cfg = load_config(make_config(model=str(qwen2_dir), lora={"target_modules": ["query_key_value"]}))
    with pytest.raises(
        InvalidRequestError, match="query_key_value not in this model; its linear layers are"
    ) as e:
        run(cfg, progress=None)
    assert e.value.param == "lora.target_modules"
    assert not cfg.output_dir.exists()
