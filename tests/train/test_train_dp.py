"""Differentially private training (Opacus): the dp config, per-example clipping and noise checked against
hand-computed gradients, ε spent and stored, resume with the accountant, refusals, exposure, and a canary
that a non-private run memorises and a private one does not."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from train_samples import CONVERSATIONS, ConfigMaker

from glmkit.errors import InvalidRequestError
from glmkit.train import checkpoint as ck
from glmkit.train import privacy
from glmkit.train.config import load_config, parse_config
from glmkit.train.data import build_dataset
from glmkit.train.loop import collate, run
from glmkit.train.masks import encode_conversation, to_messages
from glmkit.train.methods import prepare
from glmkit.train.model import BaseModel, load_base

BASE = {"method": "lora", "data": "d.jsonl", "output_dir": "out", "max_steps": 10}
LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


# --- config ------------------------------------------------------------------------------------------


def test_dp_config_defaults() -> None:
    cfg = parse_config({**BASE, "dp": {"epsilon": 8}})
    assert cfg.dp is not None and (cfg.dp.epsilon, cfg.dp.delta, cfg.dp.max_grad_norm) == (8, 1e-5, 1.0)
    assert parse_config({**BASE, "method": "ptuning", "dp": {"epsilon": 1}}).dp is not None
    assert parse_config({**BASE, "dp": {"epsilon": 8}, "max_grad_norm": None}).dp is not None
    assert parse_config(BASE).dp is None


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"dp": {"epsilon": 0}}, "dp.epsilon", "greater than 0"),
        ({"dp": {}}, "dp.epsilon", "required"),
        ({"dp": {"epsilon": 8, "delta": 1.5}}, "dp.delta", "less than 1"),
        ({"dp": {"epsilon": 8, "max_grad_norm": -1}}, "dp.max_grad_norm", "greater than 0"),
        ({"dp": {"epsilon": 8, "noise": 1.0}}, "dp.noise", "unknown key"),
        ({"dp": {"epsilon": 8}, "method": "full"}, "dp", "lora and ptuning, not 'full'"),
        ({"dp": {"epsilon": 8}, "method": "pretrain"}, "dp", "not 'pretrain'"),
        ({"dp": {"epsilon": 8}, "max_grad_norm": 1.0}, "max_grad_norm", "clipped per example"),
    ],
)
def test_dp_config_errors_name_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        parse_config({**BASE, **changes})
    assert e.value.param == field
    assert f"{field}:" in e.value.message and words in e.value.message


# --- exposure ----------------------------------------------------------------------------------------


def test_exposure_against_hand_computed_ranks() -> None:
    others = [5.0, 3.0, 9.0, 7.0, 1.0, 8.0, 6.0]  # 7 candidates: |R| = 8 with the canary
    assert privacy.exposure(0.5, others) == 3.0  # rank 1 of 8: log2 8 - log2 1
    assert privacy.exposure(2.0, others) == 2.0  # rank 2 (only 1.0 is more likely): 3 - 1
    assert privacy.exposure(6.5, others) == pytest.approx(3 - math.log2(5))  # 1, 3, 5, 6 beat it
    assert privacy.exposure(10.0, others) == 0.0  # rank 8 of 8
    assert privacy.exposure(5.0, others) == pytest.approx(3 - math.log2(3))  # ties do not outrank it
    with pytest.raises(InvalidRequestError, match="at least one candidate"):
        privacy.exposure(1.0, [])
    with pytest.raises(InvalidRequestError, match="NaN"):
        privacy.exposure(float("nan"), [1.0])


# --- the wrapper: per-example gradients, clipping and noise --------------------------------------------


def _flat(tensors: list[Any]) -> Any:
    import torch

    return torch.cat([t.reshape(-1) for t in tensors])


def test_clipping_and_noise_match_hand_computed_gradients(qwen2_dir: Path, make_config: ConfigMaker) -> None:
    import torch

    clip = 0.05
    cfg = load_config(make_config(model=str(qwen2_dir), lora=LORA, dp={"epsilon": 8, "max_grad_norm": clip}))
    base = load_base(cfg.model)
    data = build_dataset(cfg.data, "lora", base, cfg.max_seq_len)
    torch.manual_seed(0)
    model = prepare(base.model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():  # B starts at zero (then A gets no gradient): give both a gradient
        for p in params:
            p.normal_(0, 0.1)
    dp = privacy.PrivateTraining(model, torch.optim.SGD(params, lr=0.1), cfg, len(data.examples))
    examples = data.examples[:4]

    # by hand: each example's own gradient, hooks off
    dp.hooks.disable_hooks()
    grads = []
    for ex in examples:
        nll, count = privacy.example_losses(model, collate([ex], base.pad_id), use_cache=False)
        grads.append(_flat(list(torch.autograd.grad((nll / count).sum(), params))))
    dp.hooks.enable_hooks()
    norms = torch.stack([g.norm() for g in grads])
    assert int((norms > clip).sum()) >= 2, norms  # clipping really bites
    clipped = [g * min(1.0, clip / float(g.norm())) for g in grads]
    assert all(float(c.norm()) <= clip * (1 + 1e-5) for c in clipped)

    def opacus_grad(noise: float, batch_examples: list[Any]) -> Any:
        dp.optimizer.noise_multiplier = noise
        nll, count = privacy.example_losses(model, collate(batch_examples, base.pad_id), use_cache=False)
        (nll / count.clamp(min=1)).mean().backward()
        per_example = torch.stack(
            [_flat([p.grad_sample[i] for p in params]) for i in range(len(batch_examples))]
        )
        assert torch.allclose(per_example.norm(dim=1), norms[: len(batch_examples)], rtol=1e-4)
        dp.optimizer.pre_step()  # clip, sum, noise, divide by the expected batch size
        out = _flat([p.grad for p in params]).clone()
        dp.optimizer.zero_grad(set_to_none=True)
        return out

    sigma = dp.noise_multiplier
    expected = dp.expected_batch_size
    assert sigma > 0.5 and expected == 2
    # no noise: exactly the sum of the hand-clipped gradients over the expected batch size
    clean = opacus_grad(0.0, examples)
    assert torch.allclose(clean, torch.stack(clipped).sum(0) / expected, atol=1e-7)
    one = opacus_grad(0.0, examples[:1])  # one example: the update's norm is its clipped norm
    assert float(one.norm()) * expected <= clip * (1 + 1e-5)
    # noise: N(0, (σ·C)²) on the sum, so the update's deviation has std σ·C / expected
    torch.manual_seed(1)
    noised = opacus_grad(sigma, examples)
    std = float((noised - clean).std())
    assert std == pytest.approx(sigma * clip / expected, rel=0.1), (std, sigma * clip / expected)
    dp.close()
    assert not hasattr(params[0], "grad_sample")


# --- runs ----------------------------------------------------------------------------------------------


def test_dp_run_spends_at_most_epsilon_and_records_it(qwen2_dir: Path, make_config: ConfigMaker) -> None:
    cfg = load_config(
        make_config(model=str(qwen2_dir), max_steps=6, save_every=3, lora=LORA, dp={"epsilon": 8})
    )
    result = run(cfg, progress=None)
    assert result.epsilon is not None and 0 < result.epsilon <= 8
    assert result.epsilon > 6  # the noise is planned to spend (nearly) all of the budget over max_steps
    assert result.privacy is not None and result.privacy["noise_multiplier"] > 0
    assert result.privacy["sample_rate"] == 0.5  # 4 examples, batch 2: q = 1/ceil(4/2)
    lines = [json.loads(x) for x in (cfg.output_dir / ck.LOG_FILE).read_text().splitlines()]
    eps = [x["epsilon"] for x in lines if "epsilon" in x]
    assert len(eps) == 6 and eps == sorted(eps) and eps[0] > 0 and eps[-1] == round(result.epsilon, 4)
    described = ck.read_run(cfg.output_dir)
    assert described["privacy"]["epsilon_spent"] == result.epsilon
    assert described["privacy"]["target_epsilon"] == 8 and described["privacy"]["steps"] == 6
    state = json.loads((ck.latest_checkpoint(cfg.output_dir).path / privacy.PRIVACY_FILE).read_text())  # type: ignore[union-attr]
    assert state["mechanism"] == "rdp" and sum(n for _, _, n in state["history"]) == 6
    assert (cfg.output_dir / "adapter" / "adapter_config.json").is_file()


def test_dp_changes_training_and_is_reproducible(
    qwen2_dir: Path, make_config: ConfigMaker, tmp_path: Path
) -> None:
    import torch

    common: dict[str, Any] = {"model": str(qwen2_dir), "max_steps": 4, "lora": LORA, "max_grad_norm": None}

    def trained(name: str, **extra: Any) -> dict[str, Any]:
        cfg = load_config(make_config(f"{name}.yaml", output_dir=str(tmp_path / name), **common, **extra))
        run(cfg, progress=None)
        return ck.latest_checkpoint(cfg.output_dir).trainable()  # type: ignore[union-attr]

    plain, private, again = (
        trained("plain"),
        trained("dp", dp={"epsilon": 8}),
        trained("dp2", dp={"epsilon": 8}),
    )
    assert plain.keys() == private.keys()
    assert any(not torch.allclose(plain[k], private[k]) for k in plain)  # same seed, other updates
    assert all(torch.equal(private[k], again[k]) for k in private)  # the sample and noise follow the seed


def test_dp_ptuning_run(qwen2_dir: Path, make_config: ConfigMaker) -> None:
    cfg = load_config(
        make_config(
            model=str(qwen2_dir),
            method="ptuning",
            max_steps=3,
            ptuning={"num_virtual_tokens": 4},
            dp={"epsilon": 4},
        )
    )
    result = run(cfg, progress=None)
    assert result.epsilon is not None and 0 < result.epsilon <= 4
    assert ck.read_run(cfg.output_dir)["privacy"]["epsilon_spent"] == result.epsilon


def test_dp_resume_keeps_the_accountant(qwen2_dir: Path, make_config: ConfigMaker, tmp_path: Path) -> None:
    import torch

    common: dict[str, Any] = {
        "model": str(qwen2_dir),
        "max_steps": 6,
        "save_every": 3,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.3},
        "dp": {"epsilon": 8},
    }
    whole = load_config(make_config("a.yaml", output_dir=str(tmp_path / "a"), **common))
    full = run(whole, progress=None)
    killed = load_config(make_config("b.yaml", output_dir=str(tmp_path / "b"), **common))

    def die(step: int) -> None:
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(killed, on_step=die, progress=None)
    resumed = run(killed, resume=True, progress=None)
    assert resumed.resumed_from == 3 and resumed.epsilon == full.epsilon  # 6 steps counted, not 3
    a = ck.latest_checkpoint(whole.output_dir)
    b = ck.latest_checkpoint(killed.output_dir)
    assert a is not None and b is not None
    ta, tb = a.trainable(), b.trainable()
    assert all(torch.equal(ta[k], tb[k]) for k in ta)  # same samples, same noise after the restart
    assert a.json_file(privacy.PRIVACY_FILE) == b.json_file(privacy.PRIVACY_FILE)
    log = [json.loads(x) for x in (killed.output_dir / ck.LOG_FILE).read_text().splitlines()]
    assert [x["step"] for x in log] == [1, 2, 3, 4, 5, 6]

    (b.path / privacy.PRIVACY_FILE).unlink()  # a DP checkpoint without its accountant cannot go on
    longer = load_config(make_config("b.yaml", output_dir=str(tmp_path / "b"), **common))
    with pytest.raises(InvalidRequestError, match=r"has no privacy\.json"):
        run(longer, resume=True, progress=None)


# --- refusals ------------------------------------------------------------------------------------------


def test_refused_before_anything_is_written(
    qwen2_dir: Path, make_config: ConfigMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(make_config(model=str(qwen2_dir), dp={"epsilon": 8, "delta": 0.3}))
    with pytest.raises(
        InvalidRequestError, match=r"dp.delta: must be below 1 / \(training examples\) = 1/4"
    ) as e:
        run(cfg, progress=None)
    assert e.value.param == "dp.delta" and not cfg.output_dir.exists()

    ok = load_config(make_config(model=str(qwen2_dir), dp={"epsilon": 8}))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InvalidRequestError, match="one process, but WORLD_SIZE=2"):
        run(ok, progress=None)
    assert not ok.output_dir.exists()


def test_unsupported_modules_are_named() -> None:
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    with pytest.raises(
        InvalidRequestError, match=r"Opacus cannot train this model privately: 1 \(BatchNorm1d\)"
    ):
        privacy.check_model(model)
    model[1].requires_grad_(False)  # a frozen module needs no per-example gradient
    privacy.check_model(model)


# --- the canary ----------------------------------------------------------------------------------------

CANARY_Q = "我的电话号码是多少？"


def _canary(secret: str) -> dict[str, Any]:
    return {
        "conversations": [
            {"role": "user", "content": CANARY_Q},
            {"role": "assistant", "content": f"号码是{secret}。"},
        ]
    }


def _encode(base: BaseModel, record: dict[str, Any]) -> Any:
    messages, tools = to_messages(record["conversations"], base.fmt.name)
    return encode_conversation(messages, tools, base.fmt, base.tokenizer, eos_id=base.eos_id)


def canary_exposure(base: BaseModel, model: Any, secret: str, candidates: list[str]) -> float:
    examples = [_encode(base, _canary(s)) for s in [secret, *candidates]]
    scores = privacy.sequence_nll(
        model, (collate(examples[i : i + 64], base.pad_id) for i in range(0, len(examples), 64))
    )
    return privacy.exposure(scores[0], scores[1:])


def test_canary_is_exposed_without_dp_and_not_with_it(qwen2_dir: Path, tmp_path: Path) -> None:
    rng = random.Random(11)
    secret = "".join(rng.choice("0123456789") for _ in range(11))
    candidates = sorted({"".join(rng.choice("0123456789") for _ in range(11)) for _ in range(255)} - {secret})
    records = [*CONVERSATIONS * 4, *[_canary(secret)] * 5]  # 16 ordinary conversations, the canary in 5
    data = tmp_path / "canary.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    lora = {
        **LORA,
        "r": 8,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    }

    def trained(name: str, **extra: Any) -> float:
        raw = {
            "model": str(qwen2_dir),
            "method": "lora",
            "data": str(data),
            "output_dir": str(tmp_path / name),
            "max_steps": 40,
            "batch_size": 4,
            "lr": 0.02,
            "seed": 3,
            "lora": lora,
            **extra,
        }
        base = load_base(str(qwen2_dir))
        run(parse_config(raw), base=base, save=False, progress=None)
        return canary_exposure(base, base.model, secret, candidates)

    untrained = load_base(str(qwen2_dir))
    top = math.log2(len(candidates) + 1)
    before = canary_exposure(untrained, untrained.model, secret, candidates)
    plain = trained("plain")
    private = trained("dp", dp={"epsilon": 8}, max_grad_norm=None)
    assert plain >= top - 1, (before, plain, private)  # memorised: among the two most likely of 256
    assert private < plain - 3, (before, plain, private)  # DP: at least 8× further down the ranking


def test_cli_reports_epsilon(
    qwen2_dir: Path, make_config: ConfigMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    from glmkit.cli import main

    cfg = make_config(model=str(qwen2_dir), max_steps=2, lora=LORA, dp={"epsilon": 3})
    assert main(["train", "run", str(cfg), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0 < result["epsilon"] <= 3 and result["privacy"]["epsilon_spent"] == result["epsilon"]
    text_cfg = make_config(
        "t.yaml", model=str(qwen2_dir), max_steps=2, lora=LORA, dp={"epsilon": 3}, output_dir="t"
    )
    assert main(["train", "run", str(text_cfg)]) == 0
    out, err = capsys.readouterr()
    assert f"differential privacy: ε = {result['epsilon']:.3f} spent of 3" in out
    assert (
        "dp: ε ≤ 3 at δ = 1e-05 over 2 steps" in err and f"ε {result['epsilon']:.3f}" in err
    )  # progress lines
    bad = make_config("bad.yaml", model=str(qwen2_dir), method="full", dp={"epsilon": 3})
    assert main(["train", "run", str(bad), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["param"] == "dp"
