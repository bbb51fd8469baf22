"""The training config: one YAML file, validated by pydantic with ``extra="forbid"``.

Every problem becomes ``InvalidRequestError`` whose message starts with the file and the dotted field
(``lora.r: must be >= 1, got 0``) and whose ``param`` is that field. Relative paths (``data``,
``eval_data``, ``output_dir``, a ``model`` directory or GGUF) are read relative to the YAML file's folder.

Steps are optimizer steps: one step is ``batch_size × grad_accum × processes`` examples (``processes`` is
1 unless a launcher such as torchrun starts more; ``distributed.py``). With ``global_batch_size`` instead of
``grad_accum``, glmkit derives ``grad_accum`` from the number of processes, so the same file computes the
same thing on 1, 2 or 8 processes. ``warmup``, ``save_every``, ``eval_every`` and ``log_every`` count
optimizer steps too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from glmkit.errors import InvalidRequestError

Method = Literal["lora", "ptuning", "full", "pretrain"]
MixedPrecision = Literal["no", "bf16", "fp16"]
METHODS: tuple[Method, ...] = ("lora", "ptuning", "full", "pretrain")
DEFAULT_LR: dict[str, float] = {"lora": 2e-4, "ptuning": 1e-2, "full": 2e-5, "pretrain": 2e-5}
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraSettings(_Strict):
    """LoRA: ``W x + (alpha / r) · B A x`` on each target linear layer; B starts at zero."""

    r: int = Field(8, ge=1, le=4096, description="Rank of A (r × in) and B (out × r).")
    alpha: float = Field(16.0, gt=0, description="Scale numerator: the update is multiplied by alpha / r.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch's input.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(DEFAULT_LORA_TARGETS),
        min_length=1,
        description="Linear layers to adapt, by module name (q_proj, k_proj, v_proj, o_proj, gate_proj, "
        "up_proj, down_proj; gate_up_proj on ChatGLM3).",
    )


class PTuningSettings(_Strict):
    """P-Tuning v2 (PEFT prefix tuning): trained key/value prefixes in every layer."""

    num_virtual_tokens: int = Field(16, ge=1, le=4096, description="Prefix length in every layer.")
    prefix_projection: bool = Field(False, description="Reparameterise the prefix through a 2-layer MLP.")
    projection_hidden_size: int = Field(512, ge=1, description="Hidden size of that MLP.")


class DPSettings(_Strict):
    """Differentially private training (Opacus, DP-SGD): every example's gradient is clipped to
    ``max_grad_norm`` and Gaussian noise is added to their sum; the noise is chosen so that the planned
    ``max_steps`` spend at most (``epsilon``, ``delta``) under Opacus' RDP accountant (see privacy.py)."""

    epsilon: float = Field(gt=0, le=1000, description="Target privacy budget ε for the whole run.")
    delta: float = Field(1e-5, gt=0, lt=1, description="Target δ; must be below 1 / training examples.")
    max_grad_norm: float = Field(1.0, gt=0, description="Per-example gradient clipping bound (L2).")


class TrainConfig(_Strict):
    model: str = Field(
        "default",
        description="A Hugging Face directory, a .gguf file, or 'default' / an embedded model name.",
    )
    method: Method
    data: Path = Field(description="Training data: ChatGLM3 conversation JSONL, or text for pretrain.")
    eval_data: Path | None = Field(None, description="Held-out data in the same form, for eval loss.")
    output_dir: Path = Field(description="Run directory: log, checkpoints, resolved config.")
    chat_format: str | None = Field(None, description="Force a chat format (chatglm3, jinja).")
    max_steps: int = Field(ge=1, description="Optimizer steps to train.")
    batch_size: int = Field(1, ge=1, le=4096)
    grad_accum: int = Field(1, ge=1, le=4096, description="Micro-batches per optimizer step.")
    global_batch_size: int | None = Field(
        None,
        ge=1,
        description="Examples per optimizer step over all processes; grad_accum is derived from it "
        "(global_batch_size / (batch_size × processes)). Give it or grad_accum, not both.",
    )
    mixed_precision: MixedPrecision | None = Field(
        None, description="no | bf16 | fp16 autocast (default: the launcher's, else no)."
    )
    lr: float | None = Field(None, gt=0, description="Peak learning rate (default by method).")
    weight_decay: float = Field(0.0, ge=0)
    warmup: int = Field(0, ge=0, description="Steps of linear warm-up from 0 to lr; then linear decay to 0.")
    max_seq_len: int = Field(512, ge=8, le=131072, description="Longer examples are truncated.")
    seed: int = Field(42, ge=0, le=2**32 - 1)
    save_every: int = Field(100, ge=1, description="Checkpoint every N steps (and at the end).")
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept (older ones deleted).")
    eval_every: int | None = Field(None, ge=1, description="Eval loss every N steps (default: save_every).")
    log_every: int = Field(1, ge=1)
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping (null: off).")
    threads: int | None = Field(None, ge=1, le=256, description="torch threads (default: torch's).")
    lora: LoraSettings | None = None
    ptuning: PTuningSettings | None = None
    dp: DPSettings | None = Field(None, description="Differentially private training (lora, ptuning).")

    @model_validator(mode="after")
    def _coherent(self) -> TrainConfig:
        # "FIELD: reason": parse_config reports FIELD as the field in error
        if self.warmup and self.warmup >= self.max_steps:
            raise ValueError(f"warmup: must be less than max_steps ({self.max_steps}), got {self.warmup}")
        if self.lora is not None and self.method != "lora":
            raise ValueError(f"lora: a 'lora' section is given but method is {self.method!r}")
        if self.ptuning is not None and self.method != "ptuning":
            raise ValueError(f"ptuning: a 'ptuning' section is given but method is {self.method!r}")
        if self.global_batch_size is not None and "grad_accum" in self.model_fields_set:
            raise ValueError("global_batch_size: give grad_accum or global_batch_size, not both")
        if self.global_batch_size is not None and self.global_batch_size % self.batch_size:
            raise ValueError(
                f"global_batch_size: must be a multiple of batch_size ({self.batch_size}), "
                f"got {self.global_batch_size}"
            )
        if self.eval_every is not None and self.eval_data is None:
            raise ValueError("eval_every: given, but there is no eval_data")
        if self.dp is not None and self.method not in ("lora", "ptuning"):
            raise ValueError(
                f"dp: differentially private training is supported for lora and ptuning, not {self.method!r} "
                "(per-example gradients of every weight would need batch × model size memory)"
            )
        explicit_clip = "max_grad_norm" in self.model_fields_set and self.max_grad_norm is not None
        if self.dp is not None and explicit_clip:
            raise ValueError(
                "max_grad_norm: with dp, gradients are clipped per example by dp.max_grad_norm; remove the "
                "top-level max_grad_norm (it clips the whole batch) or set it to null"
            )
        return self

    @property
    def peak_lr(self) -> float:
        return DEFAULT_LR[self.method] if self.lr is None else self.lr

    @property
    def lora_settings(self) -> LoraSettings:
        return self.lora if self.lora is not None else LoraSettings()

    @property
    def ptuning_settings(self) -> PTuningSettings:
        return self.ptuning if self.ptuning is not None else PTuningSettings()

    @property
    def eval_interval(self) -> int:
        return self.save_every if self.eval_every is None else self.eval_every


def _field_of(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    if loc:
        return loc
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    head, sep, _ = msg.partition(": ")  # model-level checks say "FIELD: reason"
    return head if sep and head.replace("_", "").isalnum() else "config"


def _describe(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key (not a training setting)"
    if kind == "missing":
        return "required but missing"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not err.get("loc"):
        return msg.partition(": ")[2] or msg
    if kind == "literal_error" and err.get("loc") == ("method",):
        msg = f"must be one of {', '.join(METHODS)}"
    if "input" in err and kind not in ("model_type", "dict_type"):
        return f"{msg} (got {err['input']!r})"
    return msg


def parse_config(raw: Any, *, source: str = "config", base_dir: Path | None = None) -> TrainConfig:
    """Validate a parsed YAML mapping. Relative paths resolve against ``base_dir`` (the YAML's folder)."""
    if not isinstance(raw, dict):
        raise InvalidRequestError(
            f"{source}: a training config is a YAML mapping of settings, got {type(raw).__name__}",
            param="config",
        )
    try:
        cfg = TrainConfig.model_validate(raw)
    except ValidationError as e:
        errors = e.errors()
        lines = [f"{_field_of(dict(err))}: {_describe(dict(err))}" for err in errors]
        first = _field_of(dict(errors[0]))
        raise InvalidRequestError(f"{source}: " + "; ".join(lines), param=first) from None
    if base_dir is not None:
        cfg = _resolve_paths(cfg, base_dir)
    return cfg


def _resolve_paths(cfg: TrainConfig, base: Path) -> TrainConfig:
    def rel(p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else base / p

    updates: dict[str, Any] = {"data": rel(cfg.data), "output_dir": rel(cfg.output_dir)}
    if cfg.eval_data is not None:
        updates["eval_data"] = rel(cfg.eval_data)
    looks_like_path = cfg.model.endswith(".gguf") or "/" in cfg.model or cfg.model.startswith((".", "~"))
    if looks_like_path or (base / cfg.model).exists():
        updates["model"] = str(rel(Path(cfg.model)))
    return cfg.model_copy(update=updates)


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML config file; the data files must exist."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRequestError(f"config file not found: {p}", param="config") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidRequestError(f"cannot read config {p}: {e}", param="config") from e
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidRequestError(f"{p} is not valid YAML: {e}", param="config") from e
    cfg = parse_config(raw, source=str(p), base_dir=p.resolve().parent)
    check_files(cfg, source=str(p))
    return cfg


def check_files(cfg: TrainConfig, *, source: str = "config") -> None:
    for name in ("data", "eval_data"):
        f = getattr(cfg, name)
        if f is not None and not f.is_file():
            raise InvalidRequestError(f"{source}: {name}: file not found: {f}", param=name)
