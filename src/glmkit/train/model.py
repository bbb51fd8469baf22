"""The base model of a training run, as a trainable transformers model in fp32 plus what renders its data.

Three kinds of source (``BaseModel.kind``):

- ``chatglm3``: a THUDM ChatGLM3 checkpoint directory, mapped onto transformers' ``GlmForCausalLM`` by the
  transformers backend's ``chatglm3_to_glm`` (no remote code) and tokenized by ``ChatGLM3Tokenizer``;
- ``hf``: any other Hugging Face causal-LM directory (``AutoModelForCausalLM``, no remote code);
- ``gguf``: a GGUF file (the embedded default, ``default``, is one) dequantised to fp32 by transformers'
  GGUF loader (qwen2, llama and the other architectures it reads); its chat template comes from the file.

The chat format is the one glmkit serves the model with (``chatglm3`` for ChatGLM, else the model's jinja
template), except that tool results stay templated observations (``observation_as_user`` is a serving
work-around for the 0.5B model, and it rewrites earlier turns, which training cannot do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from glmkit.errors import InvalidRequestError, ModelLoadError, ModelNotFoundError
from glmkit.runtime.formats import chatglm3 as _chatglm3  # noqa: F401  (registers the formats)
from glmkit.runtime.formats import jinja as _jinja  # noqa: F401
from glmkit.runtime.formats.base import ChatFormat, get_format
from glmkit.runtime.protocol import Tokenizer
from glmkit.settings import DEFAULT_MODEL, Settings

Kind = Literal["chatglm3", "hf", "gguf"]


@dataclass
class BaseModel:
    model: Any  # a transformers PreTrainedModel, fp32
    tokenizer: Tokenizer
    fmt: ChatFormat
    eos_id: int | None
    pad_id: int
    kind: Kind
    source: Path  # the checkpoint directory or GGUF file
    architecture: str  # transformers' model_type of ``model`` (glm for ChatGLM3)
    hf_tokenizer: Any = None  # the transformers tokenizer (hf, gguf), saved with merged checkpoints
    chat_template: str | None = None


def resolve_source(spec: str, settings: Settings | None = None) -> tuple[Kind, Path]:
    """Where a config's ``model`` points: an embedded name (``default`` = the default model), a .gguf file
    or a checkpoint directory."""
    from glmkit.runtime.models import EMBEDDED, verify_embedded

    name = DEFAULT_MODEL if spec == "default" else spec
    if name in EMBEDDED:
        settings = settings or Settings()
        return "gguf", verify_embedded(name, settings.models_dir)
    p = Path(spec).expanduser()
    if p.is_dir():
        from glmkit.runtime.convert import is_chatglm_checkpoint

        if not (p / "config.json").is_file():
            raise ModelNotFoundError(f"model: {p} has no config.json: not a Hugging Face checkpoint")
        return ("chatglm3" if is_chatglm_checkpoint(p) else "hf"), p
    if p.is_file():
        return "gguf", p
    raise ModelNotFoundError(
        f"model: {spec!r} is not 'default', an embedded model ({', '.join(EMBEDDED)}), a checkpoint "
        "directory or a .gguf file"
    )


def load_base(spec: str, *, chat_format: str | None = None, settings: Settings | None = None) -> BaseModel:
    kind, path = resolve_source(spec, settings)
    _quiet_transformers()
    if kind == "chatglm3":
        base = _load_chatglm3(path)
    elif kind == "hf":
        base = _load_hf(path)
    else:
        base = _load_gguf(path)
    if chat_format is not None:
        base.fmt = _format(chat_format, base.chat_template, base.hf_tokenizer)
    base.model.train()
    return base


def _quiet_transformers() -> None:
    from transformers.utils import logging as tf_logging

    disable: Any = tf_logging.disable_progress_bar
    disable()  # "Loading weights" bars would interleave with training progress


def _format(name: str, template: str | None, hf_tok: Any) -> ChatFormat:
    if name != "jinja":
        return get_format(name)
    if not template:
        raise InvalidRequestError("chat_format: jinja needs a chat template, and the model has none")
    bos = str(getattr(hf_tok, "bos_token", None) or "") if hf_tok is not None else ""
    eos = str(getattr(hf_tok, "eos_token", None) or "") if hf_tok is not None else ""
    return get_format("jinja", template=template, bos_token=bos, eos_token=eos, observation_as_user=False)


def _load_chatglm3(path: Path) -> BaseModel:
    from glmkit.runtime.backends.transformers import chatglm3_to_glm
    from glmkit.runtime.tokenizers import ChatGLM3Tokenizer

    tok = ChatGLM3Tokenizer.from_checkpoint(path)
    model, config = chatglm3_to_glm(path, tokenizer=tok)
    return BaseModel(
        model=model,
        tokenizer=tok,
        fmt=get_format("chatglm3"),
        eos_id=tok.eos_id,
        pad_id=int(config.pad_token_id or 0),
        kind="chatglm3",
        source=path,
        architecture=str(config.model_type),
    )


def _load_hf(path: Path) -> BaseModel:
    from glmkit.runtime.backends.transformers import TransformersEngine

    model, config, tok, template = TransformersEngine._load_auto(path, "sdpa")
    return _hf_base(model, tok.tok, template, "hf", path, str(config.model_type))


def _hf_base(model: Any, hf_tok: Any, template: str | None, kind: Kind, path: Path, arch: str) -> BaseModel:
    from glmkit.runtime.backends.transformers import HFTokenizer

    eos = hf_tok.eos_token_id
    eos_ids = [int(eos)] if eos is not None else []
    gen = getattr(model, "generation_config", None)
    if gen is not None and gen.eos_token_id is not None:
        extra = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
        eos_ids += [int(x) for x in extra]
    tok = HFTokenizer(hf_tok, eos_ids)
    pad = hf_tok.pad_token_id if hf_tok.pad_token_id is not None else (eos if eos is not None else 0)
    if not template:
        raise ModelLoadError(
            f"{path} carries no chat template: set chat_format (chatglm3 or jinja with a template)"
        )
    return BaseModel(
        model=model,
        tokenizer=tok,
        fmt=_format("jinja", template, hf_tok),
        eos_id=int(eos) if eos is not None else None,
        pad_id=int(pad),
        kind=kind,
        source=path,
        architecture=arch,
        hf_tokenizer=hf_tok,
        chat_template=template,
    )


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The scalar and string key/values of a GGUF file (arrays such as the vocabulary are left out)."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read {path} as GGUF: {e}") from e
    out: dict[str, Any] = {}
    for key, field in reader.fields.items():
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
            continue
        try:
            out[key] = field.contents()
        except (ValueError, IndexError):
            continue
    return out


def _load_gguf(path: Path) -> BaseModel:
    import torch
    import transformers as tf

    from glmkit.runtime.backends.llamacpp_lib import check_gguf

    check_gguf(path)
    meta = gguf_metadata(path)
    arch = str(meta.get("general.architecture", ""))
    if meta.get("general.type") == "adapter":
        raise InvalidRequestError(f"model: {path} is a LoRA adapter, not a model", param="model")
    if arch in ("chatglm", "glm4"):
        raise ModelLoadError(
            f"{path} is a {arch} GGUF, which transformers cannot dequantise: train from the Hugging Face "
            "checkpoint directory instead"
        )
    try:
        hf_tok = tf.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = tf.AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="sdpa"
        )
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, ImportError) as e:
        raise ModelLoadError(
            f"transformers cannot load {path} for training ({arch or 'unknown'}): {e}"
        ) from e
    _forget_gguf_quantization(model)
    template = meta.get("tokenizer.chat_template")
    if isinstance(template, str):
        hf_tok.chat_template = template  # kept when a merged checkpoint is saved
    return _hf_base(
        model, hf_tok, template if isinstance(template, str) else None, "gguf", path, model.config.model_type
    )


def _forget_gguf_quantization(model: Any) -> None:
    """transformers dequantises GGUF weights to fp32 but keeps the model marked "gguf-quantized", which
    refuses ``save_pretrained``; the weights are plain fp32 tensors, so drop the mark."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
