"""A tiny random ChatGLM3 checkpoint in THUDM's exact layout, built in-process for the backend tests.

- ``train_tokenizer``: a SentencePiece BPE model trained on mixed Chinese/English sentences with ChatGLM3's
  layout (``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, byte pieces 3..258, byte fallback for everything else).
- ``write_checkpoint``: config.json with THUDM's keys and model.safetensors with THUDM's tensor names
  (hidden 64, 2 layers, 4 heads of 16, 2 kv groups, ffn 128), fp16 as THUDM ships them.
- ``reference_logits``: ChatGLM3's forward pass written from THUDM's ``modeling_chatglm.py`` in plain torch,
  reading the THUDM tensors directly: the yardstick for both converted models.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HIDDEN = 64
LAYERS = 2
HEADS = 4
KV_CHANNELS = 16
KV_GROUPS = 2
FFN = 128
SEQ_LENGTH = 512
N_SPECIALS = 9

SENTENCES = (
    "你好，我是人工智能助手。",
    "今天天气怎么样？",
    "北京今天的天气很好，气温二十五度。",
    "我们一起学习机器学习和深度学习。",
    "请帮我查一下上海明天的天气。",
    "Hello, how are you today?",
    "The quick brown fox jumps over the lazy dog.",
    "Please call the weather tool for the city.",
    "Answer the following questions as best as you can.",
    "You have access to the following tools:",
    'tool_call(city="Beijing", unit="celsius")',
    '{"name": "get_weather", "description": "Get the current weather", "parameters": {}}',
    "The temperature is 25 degrees and the sky is clear.",
    "what is the weather like in Beijing today",
    "你好你好，天气很好，我们学习。",
)


def _sentences() -> Iterator[str]:
    for _ in range(40):
        yield from SENTENCES


def train_tokenizer(path: Path) -> Path:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_sentences(),
        model_writer=buf,
        model_type="bpe",  # ChatGLM3's tokenizer.model is BPE with byte fallback
        vocab_size=400,
        hard_vocab_limit=False,
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        character_coverage=0.9995,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        num_threads=1,
        minloglevel=2,
    )
    path.write_bytes(buf.getvalue())
    return path


def padded_vocab(sp_vocab: int) -> int:
    return -(-(sp_vocab + N_SPECIALS) // 8) * 8


def chatglm3_config(padded_vocab_size: int) -> dict[str, Any]:
    """THUDM/chatglm3-6b's config.json keys, with tiny sizes."""
    return {
        "_name_or_path": "glmkit/chatglm3-tiny",
        "model_type": "chatglm",
        "architectures": ["ChatGLMModel"],
        "auto_map": {
            "AutoConfig": "configuration_chatglm.ChatGLMConfig",
            "AutoModel": "modeling_chatglm.ChatGLMForConditionalGeneration",
            "AutoModelForCausalLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
            "AutoModelForSeq2SeqLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
            "AutoModelForSequenceClassification": "modeling_chatglm.ChatGLMForSequenceClassification",
        },
        "add_bias_linear": False,
        "add_qkv_bias": True,
        "apply_query_key_layer_scaling": True,
        "apply_residual_connection_post_layernorm": False,
        "attention_dropout": 0.0,
        "attention_softmax_in_fp32": True,
        "bias_dropout_fusion": True,
        "ffn_hidden_size": FFN,
        "fp32_residual_connection": False,
        "hidden_dropout": 0.0,
        "hidden_size": HIDDEN,
        "kv_channels": KV_CHANNELS,
        "layernorm_epsilon": 1e-05,
        "multi_query_attention": True,
        "multi_query_group_num": KV_GROUPS,
        "num_attention_heads": HEADS,
        "num_layers": LAYERS,
        "original_rope": True,
        "padded_vocab_size": padded_vocab_size,
        "post_layer_norm": True,
        "rmsnorm": True,
        "seq_length": SEQ_LENGTH,
        "use_cache": True,
        "torch_dtype": "float16",
        "transformers_version": "4.30.2",
        "tie_word_embeddings": False,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }


def random_weights(vocab: int, sp_vocab: int, seed: int = 0) -> dict[str, Any]:
    """THUDM-named tensors. Scales give logits with a spread of a few units (non-degenerate, no ties).

    The rows of the output layer for control, special and padding ids are shrunk so that greedy runs do not
    stop (or wander into padding) after a token or two; a trained model rarely predicts those either.
    """
    import torch

    g = torch.Generator().manual_seed(seed)

    def normal(*shape: int, std: float, mean: float = 0.0) -> Any:
        return torch.randn(*shape, generator=g) * std + mean

    qkv = HEADS * KV_CHANNELS + 2 * KV_GROUPS * KV_CHANNELS
    t: dict[str, Any] = {"transformer.embedding.word_embeddings.weight": normal(vocab, HIDDEN, std=1.0)}
    # inv_freq of THUDM's RotaryEmbedding(kv_channels // 2): kv_channels // 4 entries; every runtime drops it
    rot = KV_CHANNELS // 2
    t["transformer.rotary_pos_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, rot, 2).float() / rot))
    for i in range(LAYERS):
        p = f"transformer.encoder.layers.{i}."
        t[p + "input_layernorm.weight"] = normal(HIDDEN, std=0.1, mean=1.0)
        t[p + "self_attention.query_key_value.weight"] = normal(qkv, HIDDEN, std=0.15)
        t[p + "self_attention.query_key_value.bias"] = normal(qkv, std=0.1)
        t[p + "self_attention.dense.weight"] = normal(HIDDEN, HEADS * KV_CHANNELS, std=0.1)
        t[p + "post_attention_layernorm.weight"] = normal(HIDDEN, std=0.1, mean=1.0)
        t[p + "mlp.dense_h_to_4h.weight"] = normal(2 * FFN, HIDDEN, std=0.15)
        t[p + "mlp.dense_4h_to_h.weight"] = normal(HIDDEN, FFN, std=0.1)
    t["transformer.encoder.final_layernorm.weight"] = normal(HIDDEN, std=0.1, mean=1.0)
    out = normal(vocab, HIDDEN, std=0.3)
    out[:3] *= 0.2  # <unk> <s> </s>
    out[sp_vocab : sp_vocab + N_SPECIALS] *= 0.2
    out[sp_vocab + N_SPECIALS :] = 0.0  # padding rows
    t["transformer.output_layer.weight"] = out
    return {k: v.to(torch.float16) if k != "transformer.rotary_pos_emb.inv_freq" else v for k, v in t.items()}


def write_checkpoint(directory: Path, tokenizer_model: Path | None = None, seed: int = 0) -> Path:
    """config.json + model.safetensors + tokenizer.model in ``directory``."""
    import sentencepiece as spm
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    tok_path = directory / "tokenizer.model"
    if tokenizer_model is None:
        train_tokenizer(tok_path)
    else:
        tok_path.write_bytes(tokenizer_model.read_bytes())
    sp_vocab = spm.SentencePieceProcessor(model_file=str(tok_path)).vocab_size()
    vocab = padded_vocab(sp_vocab)
    (directory / "config.json").write_text(json.dumps(chatglm3_config(vocab), indent=2), encoding="utf-8")
    save_file(
        random_weights(vocab, sp_vocab, seed), str(directory / "model.safetensors"), metadata={"format": "pt"}
    )
    return directory


@dataclass(frozen=True)
class TinyChatGLM3:
    checkpoint: Path
    gguf: Path
    sp_vocab: int
    vocab: int


def build(root: Path) -> TinyChatGLM3:
    from glmkit.runtime.convert import chatglm3_to_gguf

    ckpt = write_checkpoint(root / "chatglm3-tiny")
    gguf_path = chatglm3_to_gguf(ckpt, root / "chatglm3-tiny.f32.gguf")
    cfg = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
    vocab = int(cfg["padded_vocab_size"])
    return TinyChatGLM3(ckpt, gguf_path, _sp_vocab(ckpt), vocab)


def _sp_vocab(ckpt: Path) -> int:
    import sentencepiece as spm

    return int(spm.SentencePieceProcessor(model_file=str(ckpt / "tokenizer.model")).vocab_size())


# ---- ChatGLM3's own math, for reference -------------------------------------------------------------------


def reference_logits(checkpoint: Path, ids: list[int]) -> Any:
    """Next-token logits [vocab] by ChatGLM3's forward (THUDM modeling_chatglm.py), fp32, no cache."""
    import torch
    from safetensors.torch import load_file

    w = {k: v.float() for k, v in load_file(str(checkpoint / "model.safetensors")).items()}
    cfg = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    eps, d, nh, ng = (
        cfg["layernorm_epsilon"],
        cfg["kv_channels"],
        cfg["num_attention_heads"],
        cfg["multi_query_group_num"],
    )
    n = len(ids)

    def rms(x: Any, weight: Any) -> Any:
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    # RotaryEmbedding(kv_channels // 2): the first d/2 dims of each head rotate, in adjacent pairs
    rot = d // 2
    theta = 1.0 / (10000 ** (torch.arange(0, rot, 2, dtype=torch.float) / rot))  # [rot/2]
    ang = torch.outer(torch.arange(n, dtype=torch.float), theta)  # [n, rot/2]
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]  # [n, 1, rot/2]

    def rope(x: Any) -> Any:  # x [n, heads, d]
        xr, xp = x[..., :rot], x[..., rot:]
        pairs = xr.reshape(n, x.shape[1], rot // 2, 2)
        a, b = pairs[..., 0], pairs[..., 1]
        out = torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(2)
        return torch.cat([out, xp], dim=-1)

    x = w["transformer.embedding.word_embeddings.weight"][torch.tensor(ids)]  # [n, H]
    mask = torch.full((n, n), float("-inf")).triu(1)
    for i in range(cfg["num_layers"]):
        p = f"transformer.encoder.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"])
        qkv = (
            h @ w[p + "self_attention.query_key_value.weight"].T
            + w[p + "self_attention.query_key_value.bias"]
        )
        q, k, v = qkv.split([nh * d, ng * d, ng * d], dim=-1)
        q, k, v = rope(q.view(n, nh, d)), rope(k.view(n, ng, d)), v.view(n, ng, d)
        k = k.repeat_interleave(nh // ng, dim=1)  # head j uses group j // (heads / groups)
        v = v.repeat_interleave(nh // ng, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(d) + mask  # [heads, n, n]
        ctx = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v).reshape(n, nh * d)
        x = x + ctx @ w[p + "self_attention.dense.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"])
        gate, up = (h @ w[p + "mlp.dense_h_to_4h.weight"].T).chunk(2, dim=-1)  # swiglu: gate rows first
        x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.dense_4h_to_h.weight"].T
    x = rms(x, w["transformer.encoder.final_layernorm.weight"])
    return (x[-1] @ w["transformer.output_layer.weight"].T).double()
