"""The four training methods, as what they make trainable.

- ``lora``: PEFT LoRA on the configured linear layers; base weights frozen. Module names are transformers'
  (Qwen2/Llama: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj; ChatGLM3 mapped onto Glm: the same
  attention names, gate_up_proj and down_proj).
- ``ptuning``: P-Tuning v2 = PEFT prefix tuning: ``num_virtual_tokens`` trained keys and values in every
  layer's attention; base weights frozen.
- ``full`` and ``pretrain``: every parameter (tied embeddings count once).

A run's trainable state is ``trainable_state(model)``: ``{name: tensor}`` of exactly the parameters that
train, under the names of the prepared model (PEFT's ``base_model.model.…lora_A.default.weight`` for
adapters). Checkpoints store it; ``load_trainable`` puts it back into a freshly prepared model.
"""

from __future__ import annotations

from typing import Any

from glmkit.errors import InvalidRequestError
from glmkit.train.config import TrainConfig

ADAPTER_METHODS = ("lora", "ptuning")


def linear_module_names(model: Any) -> list[str]:
    """The distinct last name parts of the model's ``nn.Linear`` layers (what LoRA can target)."""
    import torch

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    return sorted(names)


def prepare(model: Any, cfg: TrainConfig) -> Any:
    """The model to train for ``cfg.method`` (a PEFT model for adapters; the same model otherwise)."""
    if cfg.method == "lora":
        return _lora(model, cfg)
    if cfg.method == "ptuning":
        return _ptuning(model, cfg)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _lora(model: Any, cfg: TrainConfig) -> Any:
    from peft import LoraConfig, TaskType

    s = cfg.lora_settings
    available = linear_module_names(model)
    missing = [t for t in s.target_modules if t not in available]
    if missing:
        raise InvalidRequestError(
            f"lora.target_modules: {', '.join(missing)} not in this model; its linear layers are "
            f"{', '.join(available)}",
            param="lora.target_modules",
        )
    if "lm_head" in s.target_modules:
        raise InvalidRequestError(
            "lora.target_modules: lm_head cannot be adapted (llama.cpp adapters do not apply to it)",
            param="lora.target_modules",
        )
    settings: dict[str, Any] = {  # PEFT annotates lora_alpha as int; a float alpha works and is kept
        "task_type": TaskType.CAUSAL_LM,
        "r": s.r,
        "lora_alpha": s.alpha,
        "lora_dropout": s.dropout,
        "target_modules": list(s.target_modules),
        "bias": "none",
    }
    return _peft_model(model, LoraConfig(**settings))


def _ptuning(model: Any, cfg: TrainConfig) -> Any:
    from peft import PrefixTuningConfig, TaskType

    s = cfg.ptuning_settings
    conf = PrefixTuningConfig(
        task_type=TaskType.CAUSAL_LM,
        num_virtual_tokens=s.num_virtual_tokens,
        prefix_projection=s.prefix_projection,
        encoder_hidden_size=s.projection_hidden_size,
    )
    return _peft_model(model, conf)


def _peft_model(model: Any, conf: Any) -> Any:
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():  # PEFT calls transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, conf)


def trainable_state(model: Any) -> dict[str, Any]:
    """The trainable parameters by name, detached (tied parameters once). They share the parameters' memory
    (a full fine-tune's checkpoint must not double the weights): write them out before the next step."""
    return {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: Any, state: dict[str, Any]) -> None:
    """Copy ``state`` into the model's trainable parameters; names and shapes must match exactly."""
    import torch

    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(set(params) - set(state))
    unexpected = sorted(set(state) - set(params))
    if missing or unexpected:
        raise InvalidRequestError(
            "the checkpoint does not fit this model and method "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}): was it written by another config?",
            param="checkpoint",
        )
    with torch.no_grad():
        for n, p in params.items():
            t = state[n]
            if tuple(t.shape) != tuple(p.shape):
                raise InvalidRequestError(
                    f"checkpoint tensor {n} has shape {tuple(t.shape)}, the model's is {tuple(p.shape)}",
                    param="checkpoint",
                )
            p.copy_(t.to(p.dtype))


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
