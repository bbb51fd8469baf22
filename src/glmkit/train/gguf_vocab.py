"""A GPT-2 style byte-level BPE vocabulary (Qwen2's) as llama.cpp's GGUF tokenizer metadata.

Read from a saved Hugging Face ``tokenizer.json``: tokens by id in their byte-level spelling, token types
(NORMAL for the BPE vocabulary; added tokens CONTROL when special, USER_DEFINED otherwise, as llama.cpp's
converter marks them), embedding rows past the tokenizer as ``[PADn]`` UNUSED, the merges, the special ids
and the chat template (``gguf.SpecialVocab``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glmkit.errors import ModelLoadError


def add_bpe_vocab(writer: Any, tokenizer_dir: Path, n_vocab: int, *, pre: str) -> None:
    import gguf

    path = tokenizer_dir / "tokenizer.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e
    model = data.get("model") or {}
    if model.get("type") != "BPE" or (data.get("decoder") or {}).get("type") != "ByteLevel":
        raise ModelLoadError(f"{path} is not a byte-level BPE tokenizer (GPT-2 / Qwen2 style)")
    by_id: dict[int, tuple[str, int]] = {
        int(i): (tok, gguf.TokenType.NORMAL) for tok, i in model["vocab"].items()
    }
    for added in data.get("added_tokens") or []:
        added_type = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
        by_id[int(added["id"])] = (str(added["content"]), int(added_type))
    if max(by_id) >= n_vocab:
        raise ModelLoadError(
            f"{path} has token ids up to {max(by_id)} but the model has {n_vocab} embedding rows"
        )
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        text, kind = by_id.get(i, (f"[PAD{i}]", int(gguf.TokenType.UNUSED)))
        tokens.append(text)
        types.append(kind)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(tokenizer_dir, load_merges=True, n_vocab=n_vocab)
    special.add_to_gguf(writer, quiet=True)
    if special.chat_template is None and (tokenizer_dir / "chat_template.jinja").is_file():
        writer.add_chat_template((tokenizer_dir / "chat_template.jinja").read_text(encoding="utf-8"))
