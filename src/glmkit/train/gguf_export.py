"""GGUF files from a training run, written with the ``gguf`` package (llama.cpp's own layout).

**LoRA adapter** (``export_lora``), as llama.cpp's ``convert_lora_to_gguf.py`` writes it and
``llama-adapter.cpp`` reads it: ``general.type = adapter``, ``adapter.type = lora``,
``adapter.lora.alpha``, and per adapted weight ``blk.N.<name>.weight.lora_a`` with numpy shape
[r, in] (ggml ne = [in, r]) and ``.lora_b`` with numpy shape [out, r] — PEFT's ``lora_A`` / ``lora_B``
as they are. llama.cpp adds ``scale · (alpha / r) · B (A x)`` with r read from ``lora_b``, so PEFT's
``alpha / r`` is kept exactly. Tensor names are llama.cpp's for the base architecture:

- ``qwen2`` (the embedded model): gguf's tensor map (q_proj → attn_q, gate_proj → ffn_gate, …);
- ChatGLM3 (Glm in training, ``chatglm`` in llama.cpp): q/k/v are one fused ``attn_qkv`` there, so their
  adapters are stacked: A = [A_q; A_k; A_v] ([r_f, in]), B = block-diagonal ([q+k+v out, r_f]), exactly
  the same update. The stacked rank r_f (2r or 3r) would change llama.cpp's alpha / r, so B is multiplied
  by r_f / r. ``gate_up_proj`` is ``ffn_up`` (gate rows then up rows in both).

**Whole model** (``export_model``): the merged weights at f32, f16 or q8_0 (norms and biases f32):

- a GGUF base (the embedded model): every key/value of the base file (architecture, tokenizer, chat
  template) is copied and exactly the base file's tensors are written, from the merged model;
- a Hugging Face qwen2 base: hyper-parameters from its config, the vocabulary from its ``tokenizer.json``
  (GPT-2 byte-level BPE, pre-tokenizer ``qwen2``) and its chat template;
- a ChatGLM3 base: the merged THUDM checkpoint through ``runtime.convert.chatglm3_to_gguf``.

Every file is written beside its target and renamed into place when complete.
"""

from __future__ import annotations

import importlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError
from glmkit.settings import Settings
from glmkit.train import checkpoint as ck
from glmkit.train.export import merged, newest_checkpoint, run_config, save_chatglm3, trained_model

DTYPES = ("f32", "f16", "q8_0")
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")
_GLM_QKV = ("q_proj", "k_proj", "v_proj")


def _atomic_file(out: Path, write: Callable[[Path], None]) -> Path:
    if not out.parent.is_dir():
        raise InvalidRequestError(f"output directory does not exist: {out.parent}", param="out")
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# ---- LoRA adapters -------------------------------------------------------------------------------------
def lora_pairs(state: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{module name: (A [r, in], B [out, r])}`` from PEFT parameter names."""
    parts: dict[str, dict[str, Any]] = {}
    for name, t in state.items():
        m = _LORA_KEY.match(name)
        if m is None:
            raise InvalidRequestError(f"not a LoRA tensor: {name}", param="run_dir")
        parts.setdefault(m.group("module"), {})[m.group("ab")] = t
    out = {}
    for module, ab in parts.items():
        if set(ab) != {"A", "B"}:
            raise InvalidRequestError(f"LoRA weights of {module} are incomplete", param="run_dir")
        out[module] = (ab["A"], ab["B"])
    return out


def _layer_and_leaf(module: str) -> tuple[int, str]:
    m = re.match(r"^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)$", module)
    if m is None:
        raise InvalidRequestError(
            f"LoRA on {module} has no llama.cpp counterpart", param="lora.target_modules"
        )
    return int(m.group(1)), m.group(2)


def qwen2_lora_tensors(pairs: dict[str, tuple[Any, Any]], n_layers: int) -> dict[str, Any]:
    """llama.cpp qwen2 tensor name -> tensor, for each LoRA pair (A, B unchanged)."""
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, n_layers)
    out = {}
    for module, (a, b) in sorted(pairs.items()):
        target = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if target is None:
            raise InvalidRequestError(
                f"LoRA on {module} has no llama.cpp qwen2 tensor", param="lora.target_modules"
            )
        out[target + ".lora_a"] = a
        out[target + ".lora_b"] = b
    return out


def chatglm_lora_tensors(pairs: dict[str, tuple[Any, Any]], r: int) -> dict[str, Any]:
    """llama.cpp chatglm tensor name -> tensor; q/k/v adapters stacked onto the fused attn_qkv."""
    torch: Any = importlib.import_module("torch")

    simple = {"o_proj": "attn_output", "gate_up_proj": "ffn_up", "down_proj": "ffn_down"}
    layers: dict[int, dict[str, tuple[Any, Any]]] = {}
    for module, ab in pairs.items():
        i, leaf = _layer_and_leaf(module)
        layers.setdefault(i, {})[leaf] = ab
    out: dict[str, Any] = {}
    for i, mods in sorted(layers.items()):
        for leaf, gguf_leaf in simple.items():
            if leaf in mods:
                out[f"blk.{i}.{gguf_leaf}.weight.lora_a"], out[f"blk.{i}.{gguf_leaf}.weight.lora_b"] = mods[
                    leaf
                ]
        unknown = set(mods) - set(simple) - set(_GLM_QKV)
        if unknown:
            raise InvalidRequestError(
                f"LoRA on {sorted(unknown)} has no llama.cpp chatglm tensor", param="lora.target_modules"
            )
        present = [p for p in _GLM_QKV if p in mods]
        if not present:
            continue
        if len(present) < 3:
            raise InvalidRequestError(
                "LoRA on ChatGLM3 must target all of q_proj, k_proj, v_proj or none (llama.cpp fuses them "
                f"into attn_qkv); layer {i} has {', '.join(present)}",
                param="lora.target_modules",
            )
        a = torch.cat([mods[p][0] for p in present], dim=0)  # [3r, in]
        b = torch.block_diag(*[mods[p][1] for p in present])  # [q+k+v out, 3r]
        b = b * (a.shape[0] / r)  # llama.cpp divides alpha by the stacked rank, PEFT by r
        out[f"blk.{i}.attn_qkv.weight.lora_a"], out[f"blk.{i}.attn_qkv.weight.lora_b"] = a, b
    return out


def export_lora(run_dir: Path, out: Path) -> dict[str, Any]:
    """Write the run's newest LoRA checkpoint as a llama.cpp GGUF adapter."""
    import gguf
    import numpy as np

    cfg = run_config(run_dir)
    if cfg.method != "lora":
        raise InvalidRequestError(
            f"--gguf-lora needs a LoRA run; {run_dir} trained with method {cfg.method!r} "
            "(export the whole model with --gguf instead)",
            param="method",
        )
    run = ck.read_run(run_dir)
    arch = str(run["base"]["architecture"])
    ckpt = newest_checkpoint(run_dir)
    pairs = lora_pairs(ckpt.trainable())
    s = cfg.lora_settings
    if arch == "qwen2":
        n_layers = 1 + max(_layer_and_leaf(m)[0] for m in pairs)
        tensors, gguf_arch = qwen2_lora_tensors(pairs, n_layers), "qwen2"
    elif arch == "glm":
        tensors, gguf_arch = chatglm_lora_tensors(pairs, s.r), "chatglm"
    else:
        raise InvalidRequestError(
            f"GGUF LoRA export knows qwen2 and ChatGLM3 bases; this run's base is {arch!r}", param="model"
        )

    def write(tmp: Path) -> None:
        w = gguf.GGUFWriter(str(tmp), gguf_arch)
        w.add_type(gguf.GGUFType.ADAPTER)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(s.alpha))
        w.add_name(f"glmkit LoRA r={s.r} alpha={s.alpha:g} step {ckpt.step}")
        for name, t in tensors.items():
            w.add_tensor(name, t.detach().to("cpu").float().numpy().astype(np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    _atomic_file(out, write)
    return {
        "run_dir": str(run_dir),
        "step": ckpt.step,
        "out": str(out),
        "architecture": gguf_arch,
        "tensors": len(tensors),
        "alpha": s.alpha,
        "r": s.r,
    }


# ---- whole models -------------------------------------------------------------------------------------
def _encode(t: Any, dtype: str) -> tuple[Any, Any]:
    """(numpy data, raw ggml type or None) for one tensor: matrices at ``dtype``, the rest f32."""
    import gguf
    import numpy as np

    a = t.detach().to("cpu").float().numpy()
    if a.ndim < 2 or dtype == "f32":
        return a.astype(np.float32), None
    if dtype == "f16":
        return a.astype(np.float16), None
    if a.shape[-1] % 32:  # q8_0 blocks are 32 values of a row
        return a.astype(np.float16), None
    return gguf.quants.quantize(
        a.astype(np.float32), gguf.GGMLQuantizationType.Q8_0
    ), gguf.GGMLQuantizationType.Q8_0


def _file_type(dtype: str) -> int:
    import gguf

    return int(
        {
            "f32": gguf.LlamaFileType.ALL_F32,
            "f16": gguf.LlamaFileType.MOSTLY_F16,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        }[dtype]
    )


def _add_tensors(w: Any, names: dict[str, str], state: dict[str, Any], dtype: str) -> None:
    """``names``: gguf name -> transformers name, in the order to write."""
    for gguf_name, hf_name in names.items():
        data, raw = _encode(state[hf_name], dtype)
        w.add_tensor(gguf_name, data, raw_dtype=raw)


def _finish(w: Any) -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _reverse_names(state: dict[str, Any], n_layers: int) -> dict[str, str]:
    """gguf name -> transformers name for every qwen2 tensor of ``state``."""
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2, n_layers)
    out = {}
    for hf in state:
        g = names.get_name(hf, try_suffixes=(".weight", ".bias"))
        if g is not None:
            out[g] = hf
    return out


def write_from_gguf_base(base_gguf: Path, state: dict[str, Any], out: Path, dtype: str) -> None:
    """The base file's metadata and tensor list with the merged weights."""
    import gguf

    reader = gguf.GGUFReader(str(base_gguf))
    arch = str(reader.fields["general.architecture"].contents())
    n_layers = int(reader.fields[f"{arch}.block_count"].contents())
    reverse = _reverse_names(state, n_layers)
    missing = [t.name for t in reader.tensors if t.name not in reverse]
    if missing:
        raise InvalidRequestError(
            f"the merged model has no tensor for {missing[:3]} of {base_gguf.name}", param="model"
        )

    def write(tmp: Path) -> None:
        w = gguf.GGUFWriter(str(tmp), arch)
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue
            if field.name == gguf.Keys.General.FILE_TYPE:
                continue
            vtype = field.types[0]
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            w.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
        w.add_file_type(_file_type(dtype))
        _add_tensors(w, {t.name: reverse[t.name] for t in reader.tensors}, state, dtype)
        _finish(w)

    _atomic_file(out, write)


def write_qwen2_from_hf(
    config: Any, tokenizer_dir: Path, state: dict[str, Any], out: Path, dtype: str, name: str = "glmkit"
) -> None:
    """A qwen2 GGUF from a transformers config, a saved tokenizer directory and a state dict."""
    import gguf

    from glmkit.train.gguf_vocab import add_bpe_vocab

    n_layers = int(config.num_hidden_layers)
    reverse = _reverse_names(state, n_layers)
    if config.tie_word_embeddings:
        reverse.pop("output.weight", None)
    rope = getattr(config, "rope_parameters", None) or {}
    theta = float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))

    def write(tmp: Path) -> None:
        w = gguf.GGUFWriter(str(tmp), "qwen2")
        w.add_type(gguf.GGUFType.MODEL)
        w.add_name(name)
        w.add_context_length(int(config.max_position_embeddings))
        w.add_embedding_length(int(config.hidden_size))
        w.add_feed_forward_length(int(config.intermediate_size))
        w.add_block_count(n_layers)
        w.add_head_count(int(config.num_attention_heads))
        w.add_head_count_kv(int(config.num_key_value_heads))
        w.add_rope_freq_base(theta)
        w.add_layer_norm_rms_eps(float(config.rms_norm_eps))
        w.add_file_type(_file_type(dtype))
        add_bpe_vocab(w, tokenizer_dir, int(config.vocab_size), pre="qwen2")
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_tensors(w, reverse, state, dtype)
        _finish(w)

    _atomic_file(out, write)


def export_model(
    run_dir: Path, out: Path, dtype: str = "f16", settings: Settings | None = None
) -> dict[str, Any]:
    """Write the run's merged model as one GGUF file that llama.cpp (and ``glmkit serve``) loads."""
    from glmkit.runtime.convert import chatglm3_to_gguf

    if dtype not in DTYPES:
        raise InvalidRequestError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}", param="dtype")
    if not out.parent.is_dir():
        raise InvalidRequestError(f"output directory does not exist: {out.parent}", param="out")
    t = trained_model(run_dir, settings)
    model = merged(t)
    state = {k: v for k, v in model.state_dict().items()}
    base = t.base
    if base.kind == "gguf":
        write_from_gguf_base(base.source, state, out, dtype)
        route = "metadata and tensor list of the base GGUF"
    elif base.kind == "chatglm3":
        if dtype == "q8_0":
            raise InvalidRequestError("ChatGLM3 GGUF export writes f32 or f16", param="dtype")
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".merged-") as tmp:
            save_chatglm3(base.source, model, Path(tmp))
            chatglm3_to_gguf(tmp, out, dtype=dtype)
        route = "runtime.convert.chatglm3_to_gguf of the merged THUDM checkpoint"
    elif base.architecture == "qwen2":
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".tokenizer-") as tmp:
            base.hf_tokenizer.save_pretrained(tmp)
            write_qwen2_from_hf(model.config, Path(tmp), state, out, dtype, name=base.source.name)
        route = "qwen2 hyper-parameters and tokenizer.json of the base checkpoint"
    else:
        raise InvalidRequestError(
            f"GGUF export writes qwen2 and ChatGLM3 models itself; for {base.architecture!r} run "
            "`glmkit train merge` and llama.cpp's convert_hf_to_gguf.py on the result (see docs/train.md)",
            param="model",
        )
    return {
        "run_dir": str(run_dir),
        "step": t.checkpoint.step,
        "out": str(out),
        "dtype": dtype,
        "source": route,
        "bytes": out.stat().st_size,
    }
