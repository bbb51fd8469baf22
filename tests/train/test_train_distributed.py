"""``glmkit train run`` on two processes: torchrun starts two gloo ranks on CPU (``python -m
torch.distributed.run --standalone --nproc_per_node 2``) on the tiny Qwen2. Two ranks with batch 2 compute
what one process with batch 4 computes, step by step; only rank 0 writes; a run whose rank 1 dies hard
resumes to the very weights of an unbroken run, on the same or another number of processes; and wrong
launcher settings are refused, naming them, before any weights load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import glmkit
from chatglm3_tiny import TinyChatGLM3
from glmkit.errors import InvalidRequestError
from glmkit.train import checkpoint as ck
from glmkit.train.config import load_config, parse_config
from glmkit.train.distributed import RNG_RANKS, Device, check_resume, detect_launch
from glmkit.train.loop import run

HERE = Path(__file__).resolve().parent
SRC = Path(glmkit.__file__).resolve().parents[1]
CPU = Device("cpu", True)
GPU = Device("cuda", True)
LAUNCHED = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WORLD_SIZE", "RANK"))}
    return {**env, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "GLMKIT_LOG": "error"}


def torchrun(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return proc


def glmkit_run(config: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return torchrun("-m", "glmkit", "train", "run", str(config), "--json", *extra, check=check)


def write_config(path: Path, **settings: Any) -> Path:
    path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return path


def weights(run_dir: Path) -> dict[str, Any]:
    latest = ck.latest_checkpoint(run_dir)
    assert latest is not None
    return latest.trainable()


def log(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run_dir / ck.LOG_FILE).read_text().splitlines()]


@pytest.fixture(scope="module")
def common(qwen2_dir: Path, data_file: Path) -> dict[str, Any]:
    return {
        "model": str(qwen2_dir),
        "method": "lora",
        "data": str(data_file),
        "max_steps": 6,
        "batch_size": 2,
        "lr": 0.01,
        "warmup": 1,
        "save_every": 3,
        "seed": 11,
        "threads": 1,
        "log_every": 1,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
    }


def test_two_processes_compute_what_one_does_with_the_doubled_batch(
    common: dict[str, Any], data_file: Path, tmp_path: Path
) -> None:
    import torch

    settings = {**common, "grad_accum": 2, "eval_data": str(data_file)}
    two = write_config(tmp_path / "two.yaml", **settings, output_dir=str(tmp_path / "two"))
    proc = glmkit_run(two)
    one = load_config(
        write_config(tmp_path / "one.yaml", **{**settings, "batch_size": 4}, output_dir=str(tmp_path / "one"))
    )
    single = run(one, progress=None)

    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 1 and results[0]["processes"] == 2 and results[0]["rank"] == 0  # rank 0 reports
    assert "global batch 8 = batch_size 2 × grad_accum 2 × 2 processes" in proc.stderr
    assert proc.stderr.count("step 6/6  loss") == 1  # only rank 0 prints progress

    a, b = log(tmp_path / "one"), log(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [0, 1, 2, 3, 3, 4, 5, 6, 6]  # written once
    for x, y in zip(a, b, strict=True):
        key = "loss" if "loss" in x else "eval_loss"
        assert y[key] == pytest.approx(x[key], rel=1e-5, abs=1e-5), (x, y)
    assert a[1]["loss"] > a[-2]["loss"] + 0.1  # it trained: losses moved, so equal losses mean something
    assert b[1]["tokens"] == a[1]["tokens"]  # the log counts every rank's tokens
    assert results[0]["tokens"] < single.tokens  # rank 0 fed its share only

    wa, wb = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert [c.step for c in ck.list_checkpoints(tmp_path / "two")] == [3, 6]
    assert not [p for p in (tmp_path / "two" / ck.CHECKPOINTS).iterdir() if p.name.startswith(".")]
    assert (tmp_path / "two" / "adapter" / "adapter_config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "two").iterdir() if p.name.startswith(".")) == []
    described = json.loads((tmp_path / "two" / ck.RUN_FILE).read_text())["distributed"]
    assert described["processes"] == 2 and described["global_batch"] == 8 and described["strategy"] == "ddp"
    rank_states = torch.load(
        str(tmp_path / "two" / ck.CHECKPOINTS / "step-000006" / RNG_RANKS), weights_only=True
    )
    assert len(rank_states) == 2 and not torch.equal(rank_states[0], rank_states[1])  # per-rank dropout


def test_a_killed_two_process_run_resumes_to_the_same_weights(common: dict[str, Any], tmp_path: Path) -> None:
    import torch

    settings = {**common, "grad_accum": 2, "lora": {"r": 4, "alpha": 8, "dropout": 0.3}}  # RNG per rank
    whole = write_config(tmp_path / "whole.yaml", **settings, output_dir=str(tmp_path / "whole"))
    killed = write_config(tmp_path / "killed.yaml", **settings, output_dir=str(tmp_path / "killed"))
    # the unbroken run, then the same run in another directory, rank 1 dying after step 5 (a launch each:
    # two process groups one after the other in one process hung once under heavy load)
    glmkit_run(whole)
    proc = torchrun(str(HERE / "dist_kill.py"), str(killed), "5", check=False)
    assert proc.returncode != 0  # rank 1 died; torchrun stopped rank 0
    assert [c.step for c in ck.list_checkpoints(tmp_path / "whole")] == [3, 6]
    run_dir = tmp_path / "killed"
    assert [c.step for c in ck.list_checkpoints(run_dir)] == [3]
    assert [r["step"] for r in log(run_dir)] == [1, 2, 3, 4, 5]  # logged past the checkpoint

    resumed = glmkit_run(killed, "--resume")
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["resumed_from"] == 3 and result["steps"] == 6 and result["processes"] == 2
    wa, wb = weights(tmp_path / "whole"), weights(run_dir)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [r["step"] for r in log(run_dir)] == [1, 2, 3, 4, 5, 6]
    assert [c.step for c in ck.list_checkpoints(run_dir)] == [3, 6]


def test_a_one_process_run_resumes_on_two_with_global_batch_size(
    common: dict[str, Any], chatglm3_tiny: TinyChatGLM3, tmp_path: Path
) -> None:
    """global_batch_size fixes the step's examples; grad_accum follows the process count (4 on one process,
    2 on two), so a run can move between process counts mid-way and still compute the same thing. P-Tuning
    v2 on the tiny ChatGLM3: DDP carries a prefix encoder as well as LoRA."""
    import torch

    settings = {k: v for k, v in common.items() if k != "lora"}
    settings.update(
        model=str(chatglm3_tiny.checkpoint),
        method="ptuning",
        ptuning={"num_virtual_tokens": 4},
        global_batch_size=8,
    )
    whole = load_config(write_config(tmp_path / "whole.yaml", **settings, output_dir=str(tmp_path / "whole")))
    run(whole, progress=None)
    cfg_path = write_config(tmp_path / "moved.yaml", **settings, output_dir=str(tmp_path / "moved"))

    def stop(step: int) -> None:
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(load_config(cfg_path), on_step=stop, progress=None)
    proc = glmkit_run(cfg_path, "--resume")
    assert "global batch 8 = batch_size 2 × grad_accum 2 × 2 processes" in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["resumed_from"] == 3
    wa, wb = weights(tmp_path / "whole"), weights(tmp_path / "moved")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    losses = [
        (x["loss"], y["loss"]) for x, y in zip(log(tmp_path / "whole"), log(tmp_path / "moved"), strict=True)
    ]
    assert all(y == pytest.approx(x, rel=1e-5, abs=1e-5) for x, y in losses)


def test_a_wrong_launch_is_refused_before_any_weights_load(common: dict[str, Any], tmp_path: Path) -> None:
    bad = write_config(
        tmp_path / "bad.yaml",
        **{**common, "batch_size": 1, "global_batch_size": 3, "model": str(tmp_path / "no-such-model")},
        output_dir=str(tmp_path / "run"),
    )
    proc = glmkit_run(bad, check=False)
    assert proc.returncode != 0
    errors = [json.loads(line)["error"] for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(errors) == 2  # each rank refuses, the same way
    assert all(e["param"] == "global_batch_size" for e in errors)
    assert "3 is not divisible by batch_size 1 × 2 processes (WORLD_SIZE=2)" in errors[0]["message"]
    assert "no-such-model" not in proc.stdout + proc.stderr  # refused before the model is looked for
    assert not (tmp_path / "run").exists()


def test_ddp_syncs_the_trained_weights_and_leaves_the_frozen_base_unwritten() -> None:
    """Wrapping in DDP broadcasts rank 0's trainable weights to every rank (LoRA's random init must agree),
    but not the frozen base: each rank loaded it from the same file, and writing rank 0's copy into it turns
    memory-mapped pages into private ones (2.8 GB instead of 0.4 GB resident per process on the embedded
    model). Rank 1 starts with every weight shifted by +1 to tell the two apart."""
    proc = torchrun(str(HERE / "ddp_prepare_child.py"))
    ranks = sorted(
        (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")), key=lambda r: r["rank"]
    )
    assert [r["wrapped"] for r in ranks] == ["DistributedDataParallel"] * 2
    assert ranks[1]["trainable"] == ranks[0]["trainable"]  # broadcast from rank 0
    # 4×4 weights + 4 biases shifted by 1 on rank 1: its frozen base was left as it was
    assert ranks[1]["frozen"] == pytest.approx(ranks[0]["frozen"] + 20, abs=1e-3)


# --- the launch checks, in-process (a launcher's environment passed in) ------------------------------------


def _cfg(**overrides: Any) -> Any:
    raw = {"method": "lora", "data": "d.jsonl", "output_dir": "out", "max_steps": 4, "batch_size": 2}
    return parse_config({**raw, **overrides})


def _refused(cfg: Any, env: dict[str, str], device: Device = CPU) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as e:
        detect_launch(cfg, env, device)
    return e.value


def test_launch_checks_name_the_setting() -> None:
    e = _refused(_cfg(global_batch_size=6), {**LAUNCHED, "WORLD_SIZE": "4"})
    assert e.param == "global_batch_size" and "batch_size 2 × 4 processes (WORLD_SIZE=4)" in e.message
    e = _refused(
        _cfg(method="ptuning"),
        {**LAUNCHED, "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"},
        GPU,
    )
    assert e.param == "method" and "DeepSpeed ZeRO-3 with method 'ptuning'" in e.message
    e = _refused(_cfg(), {**LAUNCHED, "ACCELERATE_USE_FSDP": "true"}, GPU)
    assert "FSDP with method 'lora'" in e.message
    e = _refused(_cfg(method="full"), {**LAUNCHED, "ACCELERATE_USE_FSDP": "true"})
    assert e.param == "distributed_type" and "FSDP needs GPUs" in e.message
    e = _refused(_cfg(method="full"), {**LAUNCHED, "ACCELERATE_USE_DEEPSPEED": "true"}, GPU)
    assert "DeepSpeed is not installed" in e.message  # not on this machine
    e = _refused(_cfg(mixed_precision="fp16"), {})
    assert e.param == "mixed_precision" and "fp16 needs a GPU" in e.message
    e = _refused(_cfg(mixed_precision="bf16"), {}, Device("cuda", False))
    assert "no bf16 support" in e.message
    e = _refused(_cfg(mixed_precision="bf16"), {**LAUNCHED, "ACCELERATE_MIXED_PRECISION": "fp16"}, GPU)
    assert "the config says 'bf16' but the launcher says 'fp16'" in e.message
    e = _refused(_cfg(), {**LAUNCHED, "RANK": "2"})
    assert e.param == "RANK"
    e = _refused(_cfg(), {"WORLD_SIZE": "2", "RANK": "1"})
    assert e.param == "MASTER_ADDR"
    e = _refused(_cfg(), {"WORLD_SIZE": "two"})
    assert "WORLD_SIZE='two' is not an integer" in e.message


def test_launch_batches_and_strategies() -> None:
    one = detect_launch(_cfg(grad_accum=3), {}, CPU)
    assert (one.processes, one.strategy, one.global_batch, one.uses_accelerate) == (1, "single", 6, False)
    two = detect_launch(_cfg(global_batch_size=8), LAUNCHED, CPU)
    assert (two.strategy, two.grad_accum, two.global_batch) == ("ddp", 2, 8)
    assert (
        two.banner() == "2 processes (ddp, gloo): global batch 8 = batch_size 2 × grad_accum 2 × 2 processes"
    )
    # accelerate launch --mixed_precision no is its default and leaves the config's choice alone
    bf16 = detect_launch(_cfg(mixed_precision="bf16"), {"ACCELERATE_MIXED_PRECISION": "no"}, CPU)
    assert bf16.mixed_precision == "bf16" and bf16.uses_accelerate
    simple = detect_launch(_cfg(), {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1"}, CPU)
    assert simple.processes == 1 and "starts one process" in simple.notes[0]  # accelerate launch --cpu


def test_resume_keeps_the_global_batch() -> None:
    prior = {"config": {"batch_size": 2, "grad_accum": 2}, "distributed": {"processes": 2, "global_batch": 8}}
    check_resume(detect_launch(_cfg(global_batch_size=8), {}, CPU), prior)  # one process, grad_accum 4
    with pytest.raises(InvalidRequestError, match="set global_batch_size: 8") as e:
        check_resume(detect_launch(_cfg(grad_accum=2), {}, CPU), prior)
    assert e.value.param == "global_batch_size"
    with pytest.raises(InvalidRequestError, match="8 is not divisible by batch_size 2 × 3 processes"):
        check_resume(detect_launch(_cfg(grad_accum=1), {**LAUNCHED, "WORLD_SIZE": "3"}, CPU), prior)
    old = {"config": {"batch_size": 2, "grad_accum": 3}}  # a run from before run.json recorded processes
    check_resume(detect_launch(_cfg(grad_accum=3), {}, CPU), old)


def test_config_batch_settings() -> None:
    with pytest.raises(InvalidRequestError, match="give grad_accum or global_batch_size, not both"):
        _cfg(grad_accum=2, global_batch_size=8)
    with pytest.raises(InvalidRequestError, match="global_batch_size: must be a multiple of batch_size"):
        _cfg(global_batch_size=5)
    with pytest.raises(InvalidRequestError, match="mixed_precision"):
        _cfg(mixed_precision="fp8")


def test_one_process_runs_need_no_launcher(common: dict[str, Any], tmp_path: Path) -> None:
    settings = {**common, "max_steps": 3}
    cfg = load_config(write_config(tmp_path / "c.yaml", **settings, output_dir=str(tmp_path / "r")))
    result = run(cfg, progress=None)
    assert result.processes == 1 and result.rank == 0
    latest = ck.latest_checkpoint(cfg.output_dir)
    assert latest is not None and not (latest.path / RNG_RANKS).exists()
    assert json.loads((cfg.output_dir / ck.RUN_FILE).read_text())["distributed"]["processes"] == 1


def test_the_chatglm3_recipe_files_load_and_plan_as_docs_train_md_says() -> None:
    """docs/examples/chatglm3-6b: accelerate reads its config files, glmkit its own, and the launch plans
    they make (on GPUs, as a launcher would set the environment) are the documented ones."""
    from accelerate.commands.config.config_args import load_config_from_file

    recipes = HERE.parents[1] / "docs" / "examples" / "chatglm3-6b"
    kinds = {
        f.name: str(load_config_from_file(str(f)).distributed_type) for f in recipes.glob("accelerate-*.yaml")
    }
    assert kinds == {
        "accelerate-1gpu.yaml": "DistributedType.NO",
        "accelerate-ddp-8gpu.yaml": "DistributedType.MULTI_GPU",
        "accelerate-zero3-2nodes.yaml": "DistributedType.DEEPSPEED",
        "accelerate-fsdp-2nodes.yaml": "DistributedType.FSDP",
    }
    json.loads((recipes / "deepspeed-zero3.json").read_text())
    lora = parse_config(yaml.safe_load((recipes / "lora.yaml").read_text()))
    full = parse_config(yaml.safe_load((recipes / "full.yaml").read_text()))
    gpus = {**LAUNCHED, "ACCELERATE_MIXED_PRECISION": "bf16"}
    assert detect_launch(lora, {"ACCELERATE_MIXED_PRECISION": "bf16"}, GPU).grad_accum == 16
    eight = detect_launch(lora, {**gpus, "WORLD_SIZE": "8"}, GPU)
    assert (eight.strategy, eight.grad_accum, eight.global_batch) == ("ddp", 2, 64)
    fsdp = detect_launch(full, {**gpus, "WORLD_SIZE": "16", "ACCELERATE_USE_FSDP": "true"}, GPU)
    assert (fsdp.strategy, fsdp.grad_accum, fsdp.mixed_precision) == ("fsdp", 4, "bf16")
    with pytest.raises(InvalidRequestError, match="DeepSpeed is not installed"):  # none on this machine
        detect_launch(full, {**gpus, "WORLD_SIZE": "16", "ACCELERATE_USE_DEEPSPEED": "true"}, GPU)


def test_bf16_autocast_on_one_cpu_process(common: dict[str, Any], tmp_path: Path) -> None:
    """mixed_precision: bf16 goes through accelerate on one process: the forward runs in bf16 (its losses
    differ from fp32 in the third digit or so) while the trained weights stay fp32; a later fp32 run in the
    same process is not affected by accelerate's process-wide state."""
    import torch

    def train(name: str, **extra: Any) -> tuple[list[float], dict[str, Any]]:
        cfg = load_config(
            write_config(tmp_path / f"{name}.yaml", **common, **extra, output_dir=str(tmp_path / name))
        )
        run(cfg, progress=None)
        return [r["loss"] for r in log(cfg.output_dir)], weights(cfg.output_dir)

    fp32, _ = train("fp32")
    bf16, w16 = train("bf16", mixed_precision="bf16")
    assert train("fp32-again")[0] == fp32  # the bf16 run left no autocast or accelerate state behind
    assert train("bf16-again", mixed_precision="bf16")[0] == bf16  # and a new Accelerator starts anew
    assert bf16 != fp32 and all(a == pytest.approx(b, rel=0.05) for a, b in zip(bf16, fp32, strict=True))
    assert all(v.dtype == torch.float32 for v in w16.values())
