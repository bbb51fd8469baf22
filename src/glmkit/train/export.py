"""A trained run as a model ``glmkit serve --model`` loads: merged Hugging Face checkpoints.

``trained_model(run_dir)`` rebuilds the run's model from its base and newest checkpoint; ``merged`` folds it
into plain weights (LoRA: ``W + (alpha / r) · B A`` via PEFT's ``merge_and_unload``; full and pretrain: the
weights themselves). P-Tuning v2 prefixes are attention keys/values, not weights: they cannot be merged.

``merge`` writes the checkpoint in the base's own layout, atomically:
- a ChatGLM3 base: THUDM's layout (fused ``query_key_value``, ``dense_h_to_4h``…), its config.json and
  tokenizer.model, so the transformers backend and ``chatglm3_to_gguf`` read it like the original;
- a Hugging Face or GGUF base: ``save_pretrained`` of the model and its tokenizer (with the chat template).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError
from glmkit.settings import Settings
from glmkit.train import checkpoint as ck
from glmkit.train.config import TrainConfig, parse_config
from glmkit.train.methods import load_trainable, prepare
from glmkit.train.model import BaseModel, load_base


@dataclass
class Trained:
    cfg: TrainConfig
    base: BaseModel
    model: Any  # the prepared model with the checkpoint's trainable weights
    checkpoint: ck.Checkpoint


def run_config(run_dir: Path) -> TrainConfig:
    return parse_config(ck.read_run(run_dir)["config"], source=str(run_dir / ck.RUN_FILE))


def newest_checkpoint(run_dir: Path) -> ck.Checkpoint:
    found = ck.latest_checkpoint(run_dir)
    if found is None:
        raise InvalidRequestError(f"{run_dir} has no complete checkpoint yet", param="run_dir")
    return found


def trained_model(run_dir: Path, settings: Settings | None = None) -> Trained:
    cfg = run_config(run_dir)
    ckpt = newest_checkpoint(run_dir)
    base = load_base(cfg.model, chat_format=cfg.chat_format, settings=settings)
    model = prepare(base.model, cfg)
    load_trainable(model, ckpt.trainable())
    model.eval()
    return Trained(cfg, base, model, ckpt)


def merged(t: Trained) -> Any:
    """The run's model as plain weights (a transformers model without adapters)."""
    if t.cfg.method == "ptuning":
        raise InvalidRequestError(
            "P-Tuning v2 prefixes are per-layer attention keys/values, not weights: they cannot be merged "
            "or exported to GGUF; use LoRA or full fine-tuning for a model glmkit serve runs",
            param="method",
        )
    if t.cfg.method == "lora":
        return t.model.merge_and_unload()
    return t.model


def merge(run_dir: Path, out_dir: Path, settings: Settings | None = None) -> dict[str, Any]:
    """Write the merged checkpoint of ``run_dir`` to ``out_dir``, which must not exist or be empty."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidRequestError(
            f"{out_dir} already exists and is not an empty directory: choose a new --out", param="out"
        )
    t = trained_model(run_dir, settings)
    model = merged(t)
    ck.write_atomic_dir(out_dir, lambda d: save_merged(t.base, model, d))
    return {
        "run_dir": str(run_dir),
        "checkpoint": str(t.checkpoint.path),
        "step": t.checkpoint.step,
        "out": str(out_dir),
        "layout": "chatglm3" if t.base.kind == "chatglm3" else "transformers",
    }


def save_merged(base: BaseModel, model: Any, out: Path) -> None:
    if base.kind == "chatglm3":
        save_chatglm3(base.source, model, out)
        return
    model.save_pretrained(str(out))
    if base.hf_tokenizer is not None:
        if base.chat_template and not getattr(base.hf_tokenizer, "chat_template", None):
            base.hf_tokenizer.chat_template = base.chat_template
        base.hf_tokenizer.save_pretrained(str(out))


def glm_to_chatglm3(state: dict[str, Any], num_layers: int) -> dict[str, Any]:
    """transformers Glm tensors -> THUDM ChatGLM3 names (the inverse of ``chatglm3_to_glm``)."""
    import torch

    out: dict[str, Any] = {
        "transformer.embedding.word_embeddings.weight": state["model.embed_tokens.weight"],
        "transformer.encoder.final_layernorm.weight": state["model.norm.weight"],
        "transformer.output_layer.weight": state["lm_head.weight"],
    }
    for i in range(num_layers):
        src, dst = f"model.layers.{i}.", f"transformer.encoder.layers.{i}."
        qkv = [state[f"{src}self_attn.{p}_proj.weight"] for p in "qkv"]
        out[dst + "self_attention.query_key_value.weight"] = torch.cat(qkv, dim=0)  # rows: q | k | v
        if f"{src}self_attn.q_proj.bias" in state:
            bias = [state[f"{src}self_attn.{p}_proj.bias"] for p in "qkv"]
            out[dst + "self_attention.query_key_value.bias"] = torch.cat(bias, dim=0)
        out[dst + "self_attention.dense.weight"] = state[src + "self_attn.o_proj.weight"]
        out[dst + "input_layernorm.weight"] = state[src + "input_layernorm.weight"]
        out[dst + "post_attention_layernorm.weight"] = state[src + "post_attention_layernorm.weight"]
        out[dst + "mlp.dense_h_to_4h.weight"] = state[src + "mlp.gate_up_proj.weight"]  # gate rows, up rows
        out[dst + "mlp.dense_4h_to_h.weight"] = state[src + "mlp.down_proj.weight"]
    return {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}


def save_chatglm3(source: Path, model: Any, out: Path) -> None:
    """A merged Glm model as a THUDM ChatGLM3 checkpoint directory (fp32 safetensors)."""
    from safetensors.torch import save_file

    state = model.state_dict()
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    config["torch_dtype"] = "float32"
    save_file(
        glm_to_chatglm3(state, int(config["num_layers"])),
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    (out / "config.json").write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copyfile(source / name, out / name)
