"""From a run to what ``glmkit serve`` loads: merged checkpoints, GGUF LoRA adapters, whole GGUF files —
each checked by logits against the trained transformers model, in llama.cpp where it is a GGUF.

Tolerances: llama.cpp keeps its KV cache in f16, so its logits differ from transformers' fp32 by ~2e-3 on
these models whether or not an adapter is applied (the base alone shows the same gap)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from train_samples import ConfigMaker

from chatglm3_tiny import TinyChatGLM3
from glmkit.cli import main
from glmkit.errors import InvalidRequestError
from glmkit.runtime.backends.llamacpp import LlamaEngine
from glmkit.train import checkpoint as ck
from glmkit.train.config import load_config
from glmkit.train.export import merge, trained_model
from glmkit.train.gguf_export import export_lora, export_model
from glmkit.train.loop import run
from glmkit.types import Message

LLAMA_TOL = 1e-2
ALL_QWEN2 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _llama_logits(model: Path, ids: list[int], lora: Path | None = None) -> Any:
    import torch

    engine = LlamaEngine(model, n_ctx=128, n_threads=1, lora=lora)
    try:
        return torch.tensor(engine.logits(ids))
    finally:
        engine.close()


def _tf_logits(model: Any, ids: list[int]) -> Any:
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def _prompt(t: Any) -> list[int]:
    return list(t.base.fmt.render_ids([Message("user", "今天天气怎么样？")], [], t.base.tokenizer))


def _zero_b(run_dir: Path, into: Path) -> Path:
    """A copy of a LoRA run whose newest checkpoint has B = 0 (the adapter adds exactly nothing)."""
    import torch
    from safetensors.torch import save_file

    shutil.copytree(run_dir, into)
    ckpt = ck.latest_checkpoint(into)
    assert ckpt is not None
    state = {k: torch.zeros_like(v) if ".lora_B." in k else v for k, v in ckpt.trainable().items()}
    save_file(state, str(ckpt.path / ck.TRAINABLE))
    return into


@pytest.fixture(scope="module")
def qwen2_lora_run(qwen2_gguf: Path, tmp_path_factory: pytest.TempPathFactory, data_file: Path) -> Path:
    """LoRA on every linear layer of the tiny Qwen2, trained from its GGUF (the embedded model's path)."""
    d = tmp_path_factory.mktemp("qwen2-lora")
    (d / "c.yaml").write_text(
        json.dumps(
            {
                "model": str(qwen2_gguf),
                "method": "lora",
                "data": str(data_file),
                "output_dir": str(d / "run"),
                "max_steps": 6,
                "batch_size": 4,
                "lr": 0.02,
                "save_every": 6,
                "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ALL_QWEN2},
            }
        )
    )
    run(load_config(d / "c.yaml"), progress=None)
    return d / "run"


def test_qwen2_gguf_lora_moves_llamacpp_logits_as_trained(
    qwen2_lora_run: Path, qwen2_gguf: Path, tmp_path: Path
) -> None:
    t = trained_model(qwen2_lora_run)
    ids = _prompt(t)
    with_adapter = _tf_logits(t.model, ids)
    with t.model.disable_adapter():
        base = _tf_logits(t.model, ids)
    assert (with_adapter - base).abs().max() > 0.5  # the adapter matters

    info = export_lora(qwen2_lora_run, tmp_path / "lora.gguf")
    assert (
        info["architecture"] == "qwen2" and info["tensors"] == 2 * 7 * 2
    )  # a, b × 7 layers' kinds × 2 blocks
    import gguf

    reader = gguf.GGUFReader(str(tmp_path / "lora.gguf"))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 8.0
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}  # ggml order: ne0 first
    assert shapes["blk.0.attn_q.weight.lora_a"] == (32, 4) and shapes["blk.0.attn_q.weight.lora_b"] == (4, 32)
    assert shapes["blk.1.ffn_down.weight.lora_a"] == (64, 4) and shapes["blk.1.ffn_down.weight.lora_b"] == (
        4,
        32,
    )

    llama_base = _llama_logits(qwen2_gguf, ids)
    llama_lora = _llama_logits(qwen2_gguf, ids, lora=tmp_path / "lora.gguf")
    assert (llama_base - base).abs().max() < LLAMA_TOL
    assert (llama_lora - with_adapter).abs().max() < LLAMA_TOL
    assert (llama_lora - llama_base).abs().max() > 0.5

    zero = _zero_b(qwen2_lora_run, tmp_path / "zero")
    export_lora(zero, tmp_path / "zero.gguf")
    assert (_llama_logits(qwen2_gguf, ids, lora=tmp_path / "zero.gguf") - llama_base).abs().max() == 0.0


def test_serving_settings_apply_the_gguf_lora(
    qwen2_lora_run: Path, qwen2_gguf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`glmkit serve -m BASE.gguf --lora ADAPTER.gguf`: the loader applies the adapter the trainer exported."""
    from glmkit.runtime.loaders import load_chat_model
    from glmkit.settings import Settings

    export_lora(qwen2_lora_run, tmp_path / "lora.gguf")
    ids = _prompt(trained_model(qwen2_lora_run))
    settings = Settings(home=tmp_path, n_threads=1, n_ctx=128, lora=tmp_path / "lora.gguf")
    chat = load_chat_model(str(qwen2_gguf), settings)
    try:
        served = torch_tensor(chat.engine.logits(ids))  # type: ignore[attr-defined]
    finally:
        chat.close()
    assert (served - _llama_logits(qwen2_gguf, ids, lora=tmp_path / "lora.gguf")).abs().max() < 1e-4
    assert (served - _llama_logits(qwen2_gguf, ids)).abs().max() > 0.5

    remote = Settings(home=tmp_path, lora=tmp_path / "lora.gguf")
    with pytest.raises(InvalidRequestError, match="--lora applies a GGUF adapter"):
        load_chat_model("openai:http://127.0.0.1:9/v1#m", remote)  # not silently ignored

    missing = tmp_path / "nope.gguf"
    code = main(["serve", "-m", str(qwen2_gguf), "--lora", str(missing), "--port", "0"])
    out = capsys.readouterr()
    assert code != 0 and f"LoRA adapter not found: {missing}" in out.out + out.err
    (tmp_path / "text.gguf").write_text("not a model")
    assert main(["serve", "-m", str(qwen2_gguf), "--lora", str(tmp_path / "text.gguf"), "--port", "0"]) != 0
    assert "is not a GGUF file" in capsys.readouterr().err
    assert main(["serve", "-m", str(tmp_path / "gone.gguf"), "--port", "0"]) != 0  # the model too, up front
    assert f"model file not found: {tmp_path / 'gone.gguf'}" in capsys.readouterr().err


def torch_tensor(x: Any) -> Any:
    import torch

    return torch.tensor(x)


def test_qwen2_merge_and_whole_gguf(qwen2_lora_run: Path, tmp_path: Path) -> None:
    from glmkit.runtime.backends.transformers import TransformersEngine

    t = trained_model(qwen2_lora_run)
    ids = _prompt(t)
    expected = _tf_logits(t.model, ids)

    info = merge(qwen2_lora_run, tmp_path / "merged")
    assert info["layout"] == "transformers" and info["step"] == 6
    engine = TransformersEngine(tmp_path / "merged", n_threads=1)
    import torch

    assert (torch.tensor(engine.logits(ids)) - expected).abs().max() < 1e-4
    assert engine.info.chat_template  # the template travels with the merged checkpoint
    engine.close()

    for dtype, tol in (("f32", LLAMA_TOL), ("q8_0", 0.5)):
        out = tmp_path / f"merged.{dtype}.gguf"
        export_model(qwen2_lora_run, out, dtype)
        assert (_llama_logits(out, ids) - expected).abs().max() < tol, dtype


def test_chatglm3_lora_fused_qkv_adapter_and_thudm_merge(
    chatglm3_tiny: TinyChatGLM3, make_config: ConfigMaker, tmp_path: Path
) -> None:
    from glmkit.runtime.backends.transformers import TransformersEngine

    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"]
    cfg = load_config(
        make_config(
            model=str(chatglm3_tiny.checkpoint),
            max_steps=4,
            batch_size=4,
            lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": targets},
        )
    )
    run(cfg, progress=None)
    t = trained_model(cfg.output_dir)
    ids = _prompt(t)
    expected = _tf_logits(t.model, ids)
    n = chatglm3_tiny.vocab

    export_lora(cfg.output_dir, tmp_path / "lora.gguf")
    llama = _llama_logits(chatglm3_tiny.gguf, ids, lora=tmp_path / "lora.gguf")
    assert (llama - expected[:n]).abs().max() < LLAMA_TOL
    assert (llama - _llama_logits(chatglm3_tiny.gguf, ids)).abs().max() > 0.5

    merge(cfg.output_dir, tmp_path / "merged")
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["model_type"] == "chatglm"
    assert (tmp_path / "merged" / "tokenizer.model").is_file()
    engine = TransformersEngine(tmp_path / "merged", n_threads=1)
    import torch

    assert (torch.tensor(engine.logits(ids)) - expected).abs().max() < 1e-4
    engine.close()
    export_model(cfg.output_dir, tmp_path / "merged.gguf", "f32")
    assert (_llama_logits(tmp_path / "merged.gguf", ids) - expected[:n]).abs().max() < LLAMA_TOL


def test_what_cannot_be_exported_says_so(
    chatglm3_tiny: TinyChatGLM3, make_config: ConfigMaker, tmp_path: Path
) -> None:
    cfg = load_config(
        make_config(model=str(chatglm3_tiny.checkpoint), method="ptuning", max_steps=1, save_every=1)
    )
    run(cfg, progress=None)
    with pytest.raises(InvalidRequestError, match="cannot be merged"):
        merge(cfg.output_dir, tmp_path / "m")
    with pytest.raises(InvalidRequestError, match="--gguf-lora needs a LoRA run"):
        export_lora(cfg.output_dir, tmp_path / "x.gguf")
    with pytest.raises(InvalidRequestError, match="not a glmkit training run"):
        merge(tmp_path, tmp_path / "m")
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.gguf").exists()


def test_cli_run_export_merge(
    qwen2_dir: Path, make_config: ConfigMaker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = make_config(model=str(qwen2_dir), max_steps=2, lora={"r": 2, "target_modules": ALL_QWEN2})
    assert main(["train", "run", str(cfg), "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (
        result["steps"] == 2 and result["method"] == "lora" and result["checkpoint"].endswith("step-000002")
    )
    run_dir = Path(result["output_dir"])

    assert main(["train", "export", str(run_dir), "--gguf-lora", str(tmp_path / "a.gguf"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tensors"] == 28
    assert (
        main(
            ["train", "export", str(run_dir), "--gguf", str(tmp_path / "m.gguf"), "--dtype", "f32", "--json"]
        )
        == 0
    )
    exported = json.loads(capsys.readouterr().out)
    assert exported["source"].startswith("qwen2 hyper-parameters")  # the Hugging Face base route
    assert main(["train", "merge", str(run_dir), "--out", str(tmp_path / "merged")]) == 0
    assert "glmkit serve --model" in capsys.readouterr().out
    assert main(["train", "merge", str(run_dir), "--out", str(tmp_path / "merged")]) == 1  # never overwritten
    assert "already exists" in capsys.readouterr().err

    # resume of a finished run: nothing to do, same checkpoint
    assert main(["train", "run", str(cfg), "--resume", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["resumed_from"] == 2

    bad = make_config("bad.yaml", model=str(qwen2_dir), lr=0)
    assert main(["train", "run", str(bad), "--json"]) == 1
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["param"] == "lr" and "lr:" in err["message"]
