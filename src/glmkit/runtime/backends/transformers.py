"""transformers backend: Hugging Face checkpoints on torch (fp32, CPU), without remote code.

- ChatGLM3 (``model_type: chatglm``): THUDM's remote modeling/tokenizer code does not run on transformers 5,
  so the checkpoint is mapped onto transformers' own ``GlmForCausalLM`` (``chatglm3_to_glm``: the same math,
  verified against llama.cpp by the tests) and tokenized by ``ChatGLM3Tokenizer`` (plain SentencePiece).
- Any other causal LM: ``AutoModelForCausalLM`` + ``AutoTokenizer`` behind ``HFTokenizer``.

``TransformersEngine.generate`` is a manual decode loop over a KV cache whose sampler reproduces the
llama.cpp engine's chain (repetition penalty over the last 64 tokens, then greedy, or top-k → top-p →
temperature → seeded draw), so a prompt behaves the same on either backend.

torch and transformers are imported inside functions only: importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from glmkit.errors import CancelledError, InvalidRequestError, ModelLoadError, ModelNotFoundError
from glmkit.runtime.convert import (
    ChatGLM3Config,
    open_chatglm3_weights,
    read_chatglm3_config,
    read_config_json,
    weight_files,
)
from glmkit.runtime.protocol import EngineInfo
from glmkit.runtime.tokenizers import ChatGLM3Tokenizer
from glmkit.types import CancelToken, ResolvedSampling

PENALTY_LAST_N = 64  # the llama.cpp engine's penalty window (prompt tokens included)


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise ModelLoadError("the transformers backend needs torch: pip install 'glmkit[hf]'") from e
    return torch


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as e:
        raise ModelLoadError("the transformers backend needs transformers: pip install 'glmkit[hf]'") from e
    return transformers


# ---- ChatGLM3 -> transformers Glm -------------------------------------------------------------------------


def glm_config(cfg: ChatGLM3Config, eos_ids: Sequence[int], attn_implementation: str = "sdpa") -> Any:
    """transformers' ``GlmConfig`` for a ChatGLM3 checkpoint. Every value is set: Glm's defaults are GLM-4's
    (e.g. rms_norm_eps 1.5625e-07), not ChatGLM3's."""
    tf = _transformers()
    return tf.GlmConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.ffn_hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        hidden_act="silu",
        max_position_embeddings=cfg.seq_length,
        rms_norm_eps=cfg.layernorm_epsilon,
        tie_word_embeddings=False,
        pad_token_id=cfg.pad_token_id,
        eos_token_id=list(eos_ids),
        # half of each head rotates, adjacent pairs: Glm's rotary is that math with factor 0.5
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta, "partial_rotary_factor": 0.5},
        attention_bias=cfg.add_qkv_bias,
        attention_dropout=0.0,
        use_cache=True,
        attn_implementation=attn_implementation,
    )


def chatglm3_to_glm(
    checkpoint_dir: str | os.PathLike[str],
    *,
    tokenizer: ChatGLM3Tokenizer | None = None,
    attn_implementation: str = "sdpa",
) -> tuple[Any, Any]:
    """Build ``(GlmForCausalLM, GlmConfig)`` in fp32 from a THUDM ChatGLM3 checkpoint directory.

    Every expected tensor is checked (presence and shape) before the model is built; a missing or misshaped
    one raises ``ModelLoadError`` naming it. ``tokenizer`` supplies the ids of ``<|user|>`` and
    ``<|observation|>`` for the config's eos list (read from the checkpoint's tokenizer.model if not given).
    """
    torch = _torch()
    tf = _transformers()
    from transformers.models.glm.modeling_glm import GlmRotaryEmbedding

    d = Path(checkpoint_dir)
    cfg = read_chatglm3_config(d)
    weights = open_chatglm3_weights(d, cfg)
    if tokenizer is None and (d / "tokenizer.model").is_file():
        tokenizer = ChatGLM3Tokenizer(d / "tokenizer.model")
    eos_ids = [cfg.eos_token_id]
    if tokenizer is not None:
        if tokenizer.vocab_size > cfg.vocab_size:
            raise ModelLoadError(
                f"{tokenizer.path} yields ids up to {tokenizer.vocab_size - 1} but config.json has "
                f"padded_vocab_size={cfg.vocab_size}: the tokenizer and the weights do not belong together"
            )
        eos_ids += [
            tid for t in ("<|user|>", "<|observation|>") if (tid := tokenizer.special_id(t)) is not None
        ]
    config = glm_config(cfg, eos_ids, attn_implementation)

    sd: dict[str, Any] = {}

    def put(glm_name: str, t: Any) -> None:
        # an owned fp32 copy: q/k/v must not share the fused tensor's storage (training updates and
        # safetensors exports treat shared storage as one tensor), nor stay backed by a mmapped file
        sd[glm_name] = t.to(dtype=torch.float32, copy=True).contiguous()

    put("model.embed_tokens.weight", weights.get("transformer.embedding.word_embeddings.weight"))
    splits = [cfg.q_size, cfg.kv_size, cfg.kv_size]
    for i in range(cfg.num_layers):
        src, dst = f"transformer.encoder.layers.{i}.", f"model.layers.{i}."
        put(dst + "input_layernorm.weight", weights.get(src + "input_layernorm.weight"))
        # fused rows: [q heads × head_dim | k groups × head_dim | v groups × head_dim]
        q, k, v = weights.get(src + "self_attention.query_key_value.weight").split(splits, dim=0)
        put(dst + "self_attn.q_proj.weight", q)
        put(dst + "self_attn.k_proj.weight", k)
        put(dst + "self_attn.v_proj.weight", v)
        if cfg.add_qkv_bias:
            qb, kb, vb = weights.get(src + "self_attention.query_key_value.bias").split(splits, dim=0)
            put(dst + "self_attn.q_proj.bias", qb)
            put(dst + "self_attn.k_proj.bias", kb)
            put(dst + "self_attn.v_proj.bias", vb)
        put(dst + "self_attn.o_proj.weight", weights.get(src + "self_attention.dense.weight"))
        put(dst + "post_attention_layernorm.weight", weights.get(src + "post_attention_layernorm.weight"))
        # gate rows then up rows in both layouts: Glm's MLP chunks gate_up_proj the same way
        put(dst + "mlp.gate_up_proj.weight", weights.get(src + "mlp.dense_h_to_4h.weight"))
        put(dst + "mlp.down_proj.weight", weights.get(src + "mlp.dense_4h_to_h.weight"))
    put("model.norm.weight", weights.get("transformer.encoder.final_layernorm.weight"))
    put("lm_head.weight", weights.get("transformer.output_layer.weight"))

    # Built on the meta device and then given the checkpoint's tensors: no time spent on a random init
    # that would be overwritten (minutes for 6B on CPU).
    with torch.device("meta"):
        model = tf.GlmForCausalLM(config)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:  # a mapping bug, not a user error; still say which tensors
        raise ModelLoadError(f"ChatGLM3 → Glm mapping does not fit GlmForCausalLM: {e}") from e
    # The rotary inverse frequencies are a non-persistent buffer (not in any state dict): compute them.
    model.model.rotary_emb = GlmRotaryEmbedding(config)
    model.eval()
    return model, config


# ---- Hugging Face tokenizers ------------------------------------------------------------------------------


def _gpt2_byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: byte-level BPE tokens spell each byte as one printable char."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def _decoder_types(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    found = {str(node.get("type"))}
    for child in node.get("decoders") or []:
        found |= _decoder_types(child)
    return found


class HFTokenizer:
    """The ``Tokenizer`` protocol over a transformers tokenizer.

    ``encode`` uses ``split_special_tokens=True``: text spelling a special token (``<|im_start|>``) is
    encoded as ordinary text, never as the control id.
    """

    def __init__(self, tok: Any, eos_ids: Sequence[int] = ()) -> None:
        self.tok = tok
        self._special: dict[str, int] = {}
        self._added: dict[int, bytes] = {}
        for tid, added in tok.added_tokens_decoder.items():
            if added.special:
                self._special[str(added.content)] = int(tid)
            else:
                self._added[int(tid)] = str(added.content).encode("utf-8")
        for text, tid in zip(tok.all_special_tokens, tok.all_special_ids, strict=True):
            if tid is not None and tid >= 0:
                self._special.setdefault(text, int(tid))
        self._special_ids = frozenset(self._special.values())
        eos = set(eos_ids)
        if tok.eos_token_id is not None:
            eos.add(int(tok.eos_token_id))
        self._eos = frozenset(eos)
        self._piece = self._make_piece_decoder()
        self._cache: dict[int, bytes] = {}

    def _make_piece_decoder(self) -> Callable[[int], bytes]:
        backend = getattr(self.tok, "backend_tokenizer", None)
        types: set[str] = set()
        if backend is not None:
            types = _decoder_types(json.loads(backend.to_str()).get("decoder"))
        if "ByteLevel" in types:
            table = _gpt2_byte_decoder()

            def byte_level(tid: int) -> bytes:
                token = self.tok.convert_ids_to_tokens(tid)
                if token is None:  # an embedding row past the tokenizer (padded vocabularies)
                    return b""
                return bytes(table[c] for c in token if c in table)

            return byte_level
        if types & {"ByteFallback", "Metaspace", "Replace"} or backend is None:

            def sentencepiece_like(tid: int) -> bytes:
                raw = self.tok.convert_ids_to_tokens(tid)
                if raw is None:
                    return b""
                token = str(raw)
                if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
                    try:
                        return bytes([int(token[3:5], 16)])
                    except ValueError:
                        pass  # a normal piece that merely looks like a byte piece
                return token.replace("\u2581", " ").encode("utf-8")

            return sentencepiece_like

        def plain(tid: int) -> bytes:
            return str(self.tok.decode([tid])).encode("utf-8")

        return plain

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self.tok.encode(text, add_special_tokens=False, split_special_tokens=True))

    def encode_with_specials(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self.tok.encode(text, add_special_tokens=False, split_special_tokens=False))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        out: list[bytes] = []
        for tid in ids:
            if tid < 0 or tid in self._special_ids:
                continue  # control tokens render as nothing, as in the llama.cpp engine
            piece = self._cache.get(tid)
            if piece is None:
                added = self._added.get(tid)
                piece = added if added is not None else self._piece(tid)
                self._cache[tid] = piece
            out.append(piece)
        return b"".join(out)

    def special_id(self, token: str) -> int | None:
        return self._special.get(token)

    @property
    def special_texts(self) -> Sequence[str]:
        return list(self._special)

    def is_eog(self, token_id: int) -> bool:
        return token_id in self._eos


def _as_id_list(v: Any) -> list[int]:
    if v is None:
        return []
    if isinstance(v, int):
        return [v]
    return [int(x) for x in v]


# ---- sampling (llama.cpp's chain, in torch) ---------------------------------------------------------------


def apply_repetition_penalty(logits: Any, window: Sequence[int], penalty: float) -> Any:
    """llama.cpp's penalty: once per distinct token in ``window``, logit/penalty if positive else
    logit×penalty. Returns a new tensor."""
    torch = _torch()
    out = logits.clone()
    if penalty == 1.0 or not window:
        return out
    idx = torch.tensor(sorted(set(window)), dtype=torch.long)
    vals = out[idx]
    out[idx] = torch.where(vals <= 0, vals * penalty, vals / penalty)
    return out


def sample_token(logits: Any, window: Sequence[int], s: ResolvedSampling, generator: Any) -> int:
    """One token from next-token ``logits`` [vocab] with llama.cpp's chain: penalties, then greedy when
    temperature is 0, else top-k (if > 0) → top-p (min_keep 1, on the untempered distribution) →
    temperature → a draw from ``generator``."""
    torch = _torch()
    logits = apply_repetition_penalty(logits.to(torch.float32), window, s.repetition_penalty)
    if s.greedy:
        return int(torch.argmax(logits))  # first maximum on ties, as llama.cpp's greedy sampler
    k = logits.shape[0] if s.top_k <= 0 else min(s.top_k, logits.shape[0])
    vals, idx = torch.topk(logits, k)  # [k], sorted descending
    if s.top_p < 1.0:
        cum = torch.cumsum(torch.softmax(vals, dim=0), dim=0)
        # keep up to and including the first token at which the running sum reaches top_p
        reached = torch.nonzero(cum >= s.top_p)
        keep = int(reached[0]) + 1 if reached.numel() else k
        vals, idx = vals[:keep], idx[:keep]
    probs = torch.softmax(vals / s.temperature, dim=0)
    choice = torch.multinomial(probs, 1, generator=generator)
    return int(idx[choice])


# ---- the engine -------------------------------------------------------------------------------------------


class TransformersEngine:
    """A Hugging Face checkpoint directory served by transformers on CPU in fp32.

    ``.model`` and ``.hf_config`` are public: training reuses the loaded model. Generations may run from
    several threads; each has its own KV cache and forward passes are serialized by a lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        name: str | None = None,
        attn_implementation: str = "sdpa",
    ) -> None:
        p = Path(path)
        if not p.exists():
            raise ModelNotFoundError(f"model directory not found: {p}")
        if not p.is_dir():
            raise ModelNotFoundError(f"a transformers model is a checkpoint directory, not a file: {p}")
        if n_ctx is not None and n_ctx < 1:
            raise InvalidRequestError(f"n_ctx must be >= 1, got {n_ctx}", param="n_ctx")
        torch = _torch()
        if n_threads is not None:
            if n_threads < 1:
                raise InvalidRequestError(f"n_threads must be >= 1, got {n_threads}", param="n_threads")
            torch.set_num_threads(n_threads)  # process-wide: torch has no per-model thread pool
        raw = read_config_json(p)
        self.tokenizer: ChatGLM3Tokenizer | HFTokenizer
        chat_template: str | None = None
        if raw.get("model_type") == "chatglm":
            tok = ChatGLM3Tokenizer.from_checkpoint(p)
            self.model, self.hf_config = chatglm3_to_glm(
                p, tokenizer=tok, attn_implementation=attn_implementation
            )
            self.tokenizer = tok
            arch = "chatglm"
            max_ctx = int(self.hf_config.max_position_embeddings)
            size = sum(f.stat().st_size for f in weight_files(p))
        else:
            self.model, self.hf_config, self.tokenizer, chat_template = self._load_auto(
                p, attn_implementation
            )
            arch = str(raw.get("model_type") or "")
            max_ctx = int(getattr(self.hf_config, "max_position_embeddings", 0) or 0) or (n_ctx or 4096)
            size = sum(f.stat().st_size for f in p.iterdir() if f.suffix in (".safetensors", ".bin"))
        self.n_vocab = int(self.model.get_input_embeddings().weight.shape[0])
        self.info = EngineInfo(
            name=name or p.resolve().name,
            backend="transformers",
            n_ctx=min(n_ctx, max_ctx) if n_ctx is not None else max_ctx,
            path=str(p),
            architecture=arch,
            chat_template=chat_template,
            size_bytes=size,
        )
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def _load_auto(p: Path, attn_implementation: str) -> tuple[Any, Any, HFTokenizer, str | None]:
        torch = _torch()
        tf = _transformers()
        # Remote code is refused explicitly: left unset, transformers asks "run the custom code? [y/N]" on
        # a terminal, and one keystroke would execute the checkpoint's Python.
        try:
            hf_tok = tf.AutoTokenizer.from_pretrained(str(p), trust_remote_code=False)
        except (OSError, ValueError, KeyError, TypeError, ImportError) as e:
            raise ModelLoadError(f"cannot load the tokenizer of {p}: {e}") from e
        try:
            model = tf.AutoModelForCausalLM.from_pretrained(
                str(p), dtype=torch.float32, attn_implementation=attn_implementation, trust_remote_code=False
            )
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, ImportError) as e:
            raise ModelLoadError(f"cannot load {p} as a causal language model: {e}") from e
        model.eval()
        eos = _as_id_list(model.config.eos_token_id)
        gen = getattr(model, "generation_config", None)
        if gen is not None:
            eos += _as_id_list(gen.eos_token_id)
        template = hf_tok.chat_template if isinstance(hf_tok.chat_template, str) else None
        return model, model.config, HFTokenizer(hf_tok, eos), template

    # -- public ---------------------------------------------------------------------------------------------
    def _check_prompt(self, prompt_ids: Sequence[int]) -> None:
        if self._closed:
            raise ModelLoadError(f"model {self.info.name} is closed")
        if not prompt_ids:
            raise InvalidRequestError("the prompt is empty", param="messages")
        if len(prompt_ids) >= self.info.n_ctx:
            raise InvalidRequestError(
                f"prompt of {len(prompt_ids)} tokens does not fit n_ctx={self.info.n_ctx}"
            )
        bad = [t for t in prompt_ids if not 0 <= t < self.n_vocab]
        if bad:
            raise InvalidRequestError(f"prompt has token ids outside the vocabulary: {bad[:5]}")

    def _forward(self, ids: Sequence[int], cache: Any) -> tuple[Any, Any]:
        """Logits [vocab] after ``ids`` appended to ``cache``; returns (logits, cache)."""
        torch = _torch()
        with self._lock, torch.inference_mode():
            if self._closed:
                raise CancelledError(f"model {self.info.name} was closed during the generation")
            out = self.model(
                input_ids=torch.tensor([list(ids)], dtype=torch.long),
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return out.logits[0, -1].to(torch.float32), out.cache

    def logits(self, prompt_ids: Sequence[int]) -> list[float]:
        """Next-token logits after ``prompt_ids`` (cross-checks against the llama.cpp engine)."""
        self._check_prompt(prompt_ids)
        logits, _ = self._forward(prompt_ids, self._new_cache())
        return [float(x) for x in logits.tolist()]

    def _new_cache(self) -> Any:
        tf = _transformers()
        return tf.DynamicCache(config=self.model.config)

    def generate(
        self,
        prompt_ids: Sequence[int],
        sampling: ResolvedSampling,
        stop_ids: frozenset[int],
        cancel: CancelToken | None = None,
    ) -> Iterator[int]:
        self._check_prompt(prompt_ids)
        return self._decode(list(prompt_ids), sampling, stop_ids, cancel)

    def _decode(
        self, prompt: list[int], s: ResolvedSampling, stop_ids: frozenset[int], cancel: CancelToken | None
    ) -> Iterator[int]:
        torch = _torch()
        generator = torch.Generator().manual_seed(s.seed)
        window = prompt[-PENALTY_LAST_N:]
        if cancel is not None and cancel.cancelled:
            return
        logits, cache = self._forward(prompt, self._new_cache())
        generated = 0
        while True:
            if cancel is not None and cancel.cancelled:
                return
            tid = sample_token(logits, window, s, generator)
            if tid in stop_ids or self.tokenizer.is_eog(tid):
                return
            yield tid
            generated += 1
            window = [*window, tid][-PENALTY_LAST_N:]
            # same limits as the llama.cpp engine: max_tokens, or the context holds no further token
            if generated >= s.max_tokens or len(prompt) + generated >= self.info.n_ctx:
                return
            logits, cache = self._forward([tid], cache)

    def close(self) -> None:
        """Release the weights; a generation still running ends with ``CancelledError``."""
        with self._lock:
            self._closed = True
            self.model = None
