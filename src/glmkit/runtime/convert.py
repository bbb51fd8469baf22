"""ChatGLM3 checkpoints: reading THUDM's layout, and converting it to a llama.cpp GGUF.

Two halves:
- the reader (``read_chatglm3_config``, ``open_chatglm3_weights``): THUDM's ``config.json`` keys and tensor
  names, validated up front so that a missing or misshaped tensor is named before anything is built. The
  transformers backend (``backends/transformers.py``) maps the same tensors onto transformers' own Glm.
- ``chatglm3_to_gguf``: writes the GGUF llama.cpp's ``convert_hf_to_gguf.py`` writes for ChatGLM3
  (architecture ``chatglm``, SentencePiece vocabulary as tokenizer model ``llama`` / pre ``chatglm-spm``).
  llama.cpp's converter only takes that path when ``_name_or_path`` contains "THUDM/chatglm3-6b" and needs
  THUDM's remote-code tokenizer; this one reads ``tokenizer.model`` with SentencePiece directly.

The tensor layout (see notes/chatglm3-porting.md): the fused ``query_key_value`` rows are q (heads × head
dim), then k, then v (kv groups × head dim each); ``dense_h_to_4h`` is gate rows then up rows. Both go to
llama.cpp as is; its chatglm graph splits them itself.

torch and safetensors (the ``hf`` extra) are imported only when weights are read.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError, ModelLoadError, ModelNotFoundError
from glmkit.runtime.tokenizers import CHATGLM3_SPECIAL_TOKENS, find_tokenizer_model

INV_FREQ = "transformer.rotary_pos_emb.inv_freq"  # recomputed by every runtime: never converted
ROPE_BASE = 10000.0


@dataclass(frozen=True)
class ChatGLM3Config:
    """The hyper-parameters of a ChatGLM3 checkpoint, from THUDM's ``config.json`` keys."""

    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int  # multi_query_group_num when multi_query_attention, else num_attention_heads
    head_dim: int  # kv_channels
    ffn_hidden_size: int
    vocab_size: int  # padded_vocab_size: the embedding rows, padding included
    seq_length: int
    layernorm_epsilon: float
    rope_theta: float  # 10000 × rope_ratio
    add_qkv_bias: bool
    eos_token_id: int
    pad_token_id: int
    name: str = ""

    @property
    def rotary_dim(self) -> int:
        """ChatGLM3 rotates only the first half of each head (adjacent pairs, GPT-J style)."""
        return self.head_dim // 2

    @property
    def q_size(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_kv_heads * self.head_dim

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor the model needs, by THUDM name, in a stable order."""
        h, qkv = self.hidden_size, self.q_size + 2 * self.kv_size
        shapes: dict[str, tuple[int, ...]] = {
            "transformer.embedding.word_embeddings.weight": (self.vocab_size, h)
        }
        for i in range(self.num_layers):
            p = f"transformer.encoder.layers.{i}."
            shapes[p + "input_layernorm.weight"] = (h,)
            shapes[p + "self_attention.query_key_value.weight"] = (qkv, h)
            if self.add_qkv_bias:
                shapes[p + "self_attention.query_key_value.bias"] = (qkv,)
            shapes[p + "self_attention.dense.weight"] = (h, self.q_size)
            shapes[p + "post_attention_layernorm.weight"] = (h,)
            shapes[p + "mlp.dense_h_to_4h.weight"] = (2 * self.ffn_hidden_size, h)
            shapes[p + "mlp.dense_4h_to_h.weight"] = (h, self.ffn_hidden_size)
        shapes["transformer.encoder.final_layernorm.weight"] = (h,)
        shapes["transformer.output_layer.weight"] = (self.vocab_size, h)
        return shapes


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object")
    return data


def read_config_json(checkpoint_dir: str | os.PathLike[str]) -> dict[str, Any]:
    d = Path(checkpoint_dir)
    if not d.is_dir():
        raise ModelNotFoundError(f"checkpoint directory not found: {d}")
    p = d / "config.json"
    if not p.is_file():
        raise ModelLoadError(f"{d} has no config.json: it is not a Hugging Face checkpoint directory")
    return _load_json(p)


def is_chatglm_checkpoint(checkpoint_dir: str | os.PathLike[str]) -> bool:
    return read_config_json(checkpoint_dir).get("model_type") == "chatglm"


def read_chatglm3_config(checkpoint_dir: str | os.PathLike[str]) -> ChatGLM3Config:
    """Parse and check THUDM's config.json; a variant the mapping does not cover is refused by name."""
    d = Path(checkpoint_dir)
    raw = read_config_json(d)
    where = d / "config.json"
    if raw.get("model_type") != "chatglm":
        raise ModelLoadError(f"{where}: model_type is {raw.get('model_type')!r}, not 'chatglm'")
    if "padded_vocab_size" not in raw:
        raise ModelLoadError(
            f"{where} has no padded_vocab_size: this is a first-generation ChatGLM-6B checkpoint, which "
            "glmkit does not support (ChatGLM2/ChatGLM3 layout expected)"
        )

    def need_int(key: str) -> int:
        v = raw.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ModelLoadError(f"{where}: {key} must be a positive integer, got {v!r}")
        return v

    def flag(key: str, default: bool) -> bool:
        v = raw.get(key, default)
        if not isinstance(v, bool):
            raise ModelLoadError(f"{where}: {key} must be true or false, got {v!r}")
        return v

    # Variants of THUDM's modeling code that change the math; the Glm/llama.cpp mapping covers none of them.
    for key, supported in (
        ("rmsnorm", True),
        ("post_layer_norm", True),
        ("add_bias_linear", False),
        ("apply_residual_connection_post_layernorm", False),
    ):
        if flag(key, supported) != supported:
            raise ModelLoadError(
                f"{where}: {key}={not supported} is not supported (ChatGLM3 uses {supported})"
            )

    heads = need_int("num_attention_heads")
    hidden = need_int("hidden_size")
    kv_channels = raw.get("kv_channels")
    head_dim = hidden // heads if kv_channels is None else need_int("kv_channels")
    if head_dim % 4:
        raise ModelLoadError(f"{where}: kv_channels={head_dim} must be a multiple of 4 (half of it rotates)")
    kv_heads = need_int("multi_query_group_num") if flag("multi_query_attention", False) else heads
    if heads % kv_heads:
        raise ModelLoadError(f"{where}: {heads} attention heads cannot share {kv_heads} key/value groups")
    rope_ratio = raw.get("rope_ratio", 1.0)
    if not isinstance(rope_ratio, (int, float)) or isinstance(rope_ratio, bool) or rope_ratio <= 0:
        raise ModelLoadError(f"{where}: rope_ratio must be a positive number, got {rope_ratio!r}")
    eps = raw.get("layernorm_epsilon", 1e-5)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps <= 0:
        raise ModelLoadError(f"{where}: layernorm_epsilon must be a positive number, got {eps!r}")
    eos = raw.get("eos_token_id", 2)
    if isinstance(eos, list):  # some re-saved configs list several; ChatGLM3's own is the first
        eos = eos[0] if eos else 2
    pad = raw.get("pad_token_id", 0)
    if not isinstance(eos, int) or not isinstance(pad, int):
        raise ModelLoadError(f"{where}: eos_token_id/pad_token_id must be integers, got {eos!r}/{pad!r}")
    name = str(raw.get("_name_or_path") or d.resolve().name).rstrip("/").split("/")[-1]
    return ChatGLM3Config(
        num_layers=need_int("num_layers"),
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        ffn_hidden_size=need_int("ffn_hidden_size"),
        vocab_size=need_int("padded_vocab_size"),
        seq_length=need_int("seq_length"),
        layernorm_epsilon=float(eps),
        rope_theta=ROPE_BASE * float(rope_ratio),
        add_qkv_bias=flag("add_qkv_bias", False),
        eos_token_id=eos,
        pad_token_id=pad,
        name=name,
    )


# ---- weights ----------------------------------------------------------------------------------------------


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise ModelLoadError(
            "reading checkpoint weights needs torch and safetensors: pip install 'glmkit[hf]'"
        ) from e
    return torch


def weight_files(checkpoint_dir: str | os.PathLike[str]) -> list[Path]:
    """The checkpoint's weight files: safetensors preferred, then pytorch_model*.bin; sharded with an index
    json or not."""
    d = Path(checkpoint_dir)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = d / index_name
        if index.is_file():
            weight_map = _load_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ModelLoadError(f"{index} has no weight_map")
            files = [d / f for f in dict.fromkeys(str(v) for v in weight_map.values())]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise ModelLoadError(f"{index} lists shard files that are missing: {', '.join(missing)}")
            return files
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (d / single).is_file():
            return [d / single]
    for pattern in ("model-*-of-*.safetensors", "pytorch_model-*-of-*.bin"):
        shards = sorted(d.glob(pattern))
        if shards:
            return shards
    raise ModelLoadError(
        f"{d} holds no weights: expected model.safetensors, pytorch_model.bin, or their shards (with or "
        "without an index json)"
    )


class ChatGLM3Weights:
    """Lazy access to a checkpoint's tensors by THUDM name; shapes are checked before any data is read.

    safetensors files are opened with ``safe_open`` (each tensor read on demand); ``.bin`` files are loaded
    with ``torch.load(weights_only=True, mmap=True)`` so that nothing is unpickled beyond tensors.
    """

    def __init__(self, checkpoint_dir: str | os.PathLike[str], cfg: ChatGLM3Config) -> None:
        self.cfg = cfg
        self.files = weight_files(checkpoint_dir)
        self._torch = _torch()
        self._where: dict[str, tuple[Any, str]] = {}  # name -> (open handle or state dict, file name)
        for f in self.files:
            if f.suffix == ".safetensors":
                self._open_safetensors(f)
            else:
                self._open_bin(f)
        self._check()

    def _open_safetensors(self, f: Path) -> None:
        from safetensors import SafetensorError, safe_open

        try:
            handle: Any = safe_open(str(f), framework="pt")
            names: list[str] = handle.keys()  # safe_open is not iterable itself
        except (SafetensorError, OSError) as e:
            raise ModelLoadError(
                f"{f} is not a readable safetensors file ({e}): it is corrupt or truncated"
            ) from e
        for n in names:
            self._where.setdefault(n, (handle, f.name))

    def _open_bin(self, f: Path) -> None:
        torch = self._torch
        errors = (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)
        try:
            try:
                sd = torch.load(str(f), map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # legacy (pre-zip) torch files cannot be memory-mapped
                sd = torch.load(str(f), map_location="cpu", weights_only=True)
        except errors as e:
            raise ModelLoadError(f"{f} is not a readable PyTorch weights file ({e})") from e
        if not isinstance(sd, dict):
            raise ModelLoadError(f"{f} does not hold a state dict (found {type(sd).__name__})")
        for n in sd:
            self._where.setdefault(str(n), (sd, f.name))

    def shape(self, name: str) -> tuple[int, ...]:
        src, _ = self._where[name]
        if isinstance(src, dict):
            return tuple(int(x) for x in src[name].shape)
        return tuple(int(x) for x in src.get_slice(name).get_shape())

    def _check(self) -> None:
        expected = self.cfg.expected_shapes()
        missing = [n for n in expected if n not in self._where]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ModelLoadError(
                f"checkpoint tensor {missing[0]} is missing{more} in {', '.join(f.name for f in self.files)}"
            )
        for n, want in expected.items():
            got = self.shape(n)
            if got != want:
                raise ModelLoadError(
                    f"checkpoint tensor {n} has shape {list(got)}, expected {list(want)} from config.json"
                )
        unknown = sorted(n for n in self._where if n not in expected and n != INV_FREQ)
        if unknown:
            hint = (
                " (a P-tuning prefix encoder: merge or drop it first)"
                if "prefix_encoder" in unknown[0]
                else ""
            )
            raise ModelLoadError(
                f"checkpoint has tensors the ChatGLM3 mapping does not know: {', '.join(unknown[:5])}{hint}"
            )

    def get(self, name: str) -> Any:
        """The tensor as stored (fp16/bf16/fp32 torch tensor on CPU)."""
        from safetensors import SafetensorError

        src, fname = self._where[name]
        if isinstance(src, dict):
            return src[name]
        try:
            return src.get_tensor(name)
        except (SafetensorError, OSError, RuntimeError) as e:
            raise ModelLoadError(f"cannot read tensor {name} from {fname}: {e}") from e

    def items(self) -> Iterator[tuple[str, Any]]:
        for n in self.cfg.expected_shapes():
            yield n, self.get(n)

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def open_chatglm3_weights(checkpoint_dir: str | os.PathLike[str], cfg: ChatGLM3Config) -> ChatGLM3Weights:
    return ChatGLM3Weights(checkpoint_dir, cfg)


# ---- GGUF -------------------------------------------------------------------------------------------------

GGUF_ARCH = "chatglm"


def _gguf_name(thudm: str) -> str:
    """THUDM tensor name -> llama.cpp chatglm tensor name (gguf's tensor map for MODEL_ARCH.CHATGLM)."""
    if thudm == "transformer.embedding.word_embeddings.weight":
        return "token_embd.weight"
    if thudm == "transformer.output_layer.weight":
        return "output.weight"
    if thudm == "transformer.encoder.final_layernorm.weight":
        return "output_norm.weight"
    prefix = "transformer.encoder.layers."
    if thudm.startswith(prefix):
        idx, rest = thudm[len(prefix) :].split(".", 1)
        leaf = {
            "input_layernorm.weight": "attn_norm.weight",
            "self_attention.query_key_value.weight": "attn_qkv.weight",
            "self_attention.query_key_value.bias": "attn_qkv.bias",
            "self_attention.dense.weight": "attn_output.weight",
            "post_attention_layernorm.weight": "ffn_norm.weight",
            "mlp.dense_h_to_4h.weight": "ffn_up.weight",
            "mlp.dense_4h_to_h.weight": "ffn_down.weight",
        }.get(rest)
        if leaf is not None:
            return f"blk.{idx}.{leaf}"
    raise ModelLoadError(f"no GGUF name for checkpoint tensor {thudm}")


def _vocab(checkpoint_dir: Path, cfg: ChatGLM3Config) -> tuple[list[bytes], list[float], list[int]]:
    """Tokens, scores and types exactly as llama.cpp's ``set_vocab_chatglm3`` writes them."""
    import gguf

    from glmkit.runtime.tokenizers import ChatGLM3Tokenizer

    tok = ChatGLM3Tokenizer(find_tokenizer_model(checkpoint_dir))
    sp, n_sp = tok.sp, tok.sp_vocab_size
    if tok.vocab_size > cfg.vocab_size:
        raise ModelLoadError(
            f"tokenizer.model has {n_sp} pieces + {len(CHATGLM3_SPECIAL_TOKENS)} specials = {tok.vocab_size} "
            f"ids, more than padded_vocab_size={cfg.vocab_size} in config.json: they do not belong together"
        )
    tt = gguf.TokenType
    renamed = {0: "<unk>", 1: "<bos>", 2: "<eos>"}  # llama.cpp's converter renames ids 0-2 so
    tokens: list[bytes] = []
    scores: list[float] = []
    types: list[int] = []
    for i in range(cfg.vocab_size):
        if i < n_sp:
            tokens.append(renamed.get(i, sp.id_to_piece(i)).encode("utf-8"))
            scores.append(float(sp.get_score(i)))
            if sp.is_unknown(i):
                types.append(tt.UNKNOWN)
            elif sp.is_control(i):
                types.append(tt.CONTROL)
            elif sp.is_unused(i):
                types.append(tt.UNUSED)
            elif sp.is_byte(i):
                types.append(tt.BYTE)
            else:
                types.append(tt.NORMAL)
        elif i < tok.vocab_size:
            tokens.append(CHATGLM3_SPECIAL_TOKENS[i - n_sp].encode("utf-8"))
            scores.append(0.0)
            types.append(tt.CONTROL)
        else:  # the embedding's padding rows
            tokens.append(f"[PAD{i}]".encode())
            scores.append(0.0)
            types.append(tt.UNUSED)
    return tokens, scores, types


def chatglm3_to_gguf(
    checkpoint_dir: str | os.PathLike[str], out_path: str | os.PathLike[str], *, dtype: str = "f32"
) -> Path:
    """Convert a ChatGLM3 checkpoint directory (config.json, weights, tokenizer.model) to a GGUF file.

    ``dtype`` is ``"f32"`` or ``"f16"`` for the matrices; norms and biases stay f32, as llama.cpp's
    converter keeps them. The file is written next to ``out_path`` and renamed into place when complete.
    """
    import gguf
    import numpy as np

    if dtype not in ("f32", "f16"):
        raise InvalidRequestError(f"dtype must be 'f32' or 'f16', got {dtype!r}", param="dtype")
    src = Path(checkpoint_dir)
    out = Path(out_path)
    if not out.parent.is_dir():
        raise InvalidRequestError(f"output directory does not exist: {out.parent}", param="out_path")
    cfg = read_chatglm3_config(src)
    if cfg.q_size != cfg.hidden_size:
        # llama.cpp's chatglm graph slices q/k/v at offsets of n_embd: it needs heads × head dim == hidden.
        raise ModelLoadError(
            f"num_attention_heads × kv_channels = {cfg.q_size} differs from hidden_size {cfg.hidden_size}: "
            "llama.cpp's chatglm architecture cannot run this checkpoint"
        )
    tokens, scores, types = _vocab(src, cfg)
    weights = open_chatglm3_weights(src, cfg)
    torch = _torch()
    mat_dtype = torch.float16 if dtype == "f16" else torch.float32

    tmp = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(tmp, GGUF_ARCH)
    done = False
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(cfg.name)
        writer.add_context_length(cfg.seq_length)
        writer.add_embedding_length(cfg.hidden_size)
        writer.add_feed_forward_length(cfg.ffn_hidden_size)  # the per-branch width, not gate+up
        writer.add_block_count(cfg.num_layers)
        writer.add_head_count(cfg.num_attention_heads)
        writer.add_head_count_kv(cfg.num_kv_heads)
        writer.add_layer_norm_rms_eps(cfg.layernorm_epsilon)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
        writer.add_rope_dimension_count(cfg.rotary_dim)  # llama.cpp's default (the head dim) is wrong here
        writer.add_add_bos_token(False)
        writer.add_rope_freq_base(cfg.rope_theta)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("chatglm-spm")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_eos_token_id(cfg.eos_token_id)
        writer.add_pad_token_id(cfg.pad_token_id)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

        # Tensor infos first (shapes are known without reading data), then the data one tensor at a time,
        # so converting a 6B checkpoint never holds more than one tensor in memory.
        plan: list[tuple[str, Any]] = []  # (THUDM name, torch dtype) in the order of the tensor infos
        for name, shape in cfg.expected_shapes().items():
            t_dtype = mat_dtype if len(shape) == 2 else torch.float32
            np_dtype = np.float16 if t_dtype == torch.float16 else np.float32
            nbytes = int(np.prod(shape)) * np.dtype(np_dtype).itemsize
            writer.add_tensor_info(_gguf_name(name), shape, np.dtype(np_dtype), nbytes)
            plan.append((name, t_dtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, t_dtype in plan:
            arr = weights.get(name).to(t_dtype).contiguous().numpy()
            writer.write_tensor_data(arr)
        writer.close()
        os.replace(tmp, out)
        done = True
    finally:
        if not done:
            writer.close()
            tmp.unlink(missing_ok=True)
    return out
