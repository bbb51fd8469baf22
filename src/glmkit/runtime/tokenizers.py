"""Tokenizers that need neither transformers nor remote code.

``ChatGLM3Tokenizer`` reads ChatGLM3's SentencePiece ``tokenizer.model`` directly. THUDM's own
``tokenization_chatglm.py`` is remote code that transformers 5 no longer runs, and it is only a thin layer
over SentencePiece: nine special tokens are appended after the SentencePiece vocabulary, in a fixed order,
and every piece of text is encoded on its own (each encode adding its own leading ``▁``).

Plain ``encode`` never yields a special id, whatever the text says: role tokens are added by id by the
chat format, so a user typing ``<|user|>`` (or a word such as "isopropyl" that contains ``sop``) cannot
forge a turn.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glmkit.errors import ModelLoadError, ModelNotFoundError

# In id order after the SentencePiece vocabulary: [MASK] = sp.vocab_size() + 0, ... (64789.. in ChatGLM3).
CHATGLM3_SPECIAL_TOKENS: tuple[str, ...] = (
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "sop",
    "eop",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
)
TOKENIZER_FILE = "tokenizer.model"
_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _sentencepiece() -> Any:
    import sentencepiece

    return sentencepiece


class ChatGLM3Tokenizer:
    """The ``Tokenizer`` protocol over ChatGLM3's SentencePiece model plus its nine appended specials."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        if not p.is_file():
            raise ModelNotFoundError(f"ChatGLM3 tokenizer file not found: {p}")
        spm = _sentencepiece()
        sp = spm.SentencePieceProcessor()
        try:
            sp.Load(str(p))
        except (OSError, RuntimeError) as e:
            raise ModelLoadError(
                f"{p} is not a readable SentencePiece model ({e}): the file is corrupt or of another format"
            ) from e
        n = sp.vocab_size()
        if n <= 0 or sp.eos_id() < 0:
            raise ModelLoadError(
                f"{p} is a SentencePiece model without an end-of-sequence piece: not ChatGLM3's"
            )
        self.path = p
        self.sp = sp
        self.sp_vocab_size: int = n
        self.eos_id: int = sp.eos_id()
        self._special: dict[str, int] = {t: n + i for i, t in enumerate(CHATGLM3_SPECIAL_TOKENS)}
        # SentencePiece's own control pieces are reachable by name (e.g. "</s>" -> 2) but are not fenced
        # text: SentencePiece never produces them from text either.
        self._control: dict[str, int] = {sp.id_to_piece(i): i for i in range(n) if sp.is_control(i)}
        if sp.unk_id() >= 0:
            self._control[sp.id_to_piece(sp.unk_id())] = sp.unk_id()
        self._pieces: list[bytes] = [self._piece_bytes(i) for i in range(n)]
        self._split = re.compile("(" + "|".join(re.escape(t) for t in CHATGLM3_SPECIAL_TOKENS) + ")")

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: str | os.PathLike[str]) -> ChatGLM3Tokenizer:
        """The tokenizer of a ChatGLM3 checkpoint directory (its ``tokenizer.model``)."""
        return cls(find_tokenizer_model(checkpoint_dir))

    def _piece_bytes(self, i: int) -> bytes:
        sp = self.sp
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            return b""
        piece: str = sp.id_to_piece(i)
        if sp.is_byte(i):
            m = _BYTE_PIECE.match(piece)
            if m is None:  # a byte piece always reads <0xNN>; anything else means a broken model file
                raise ModelLoadError(f"{self.path}: byte piece {i} is spelled {piece!r}, not <0xNN>")
            return bytes([int(m.group(1), 16)])
        return piece.replace("\u2581", " ").encode("utf-8")

    @property
    def vocab_size(self) -> int:
        """SentencePiece pieces plus the nine specials (the checkpoint pads its embedding beyond this)."""
        return self.sp_vocab_size + len(CHATGLM3_SPECIAL_TOKENS)

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        return list(self.sp.encode(text))

    def encode_with_specials(self, text: str) -> list[int]:
        """Template text: special-token spellings become their ids, each stretch between them is encoded on
        its own (as THUDM's tokenizer does with ``encode_special_tokens=True``). Never use this on text a user
        wrote: "isopropyl" contains ``sop``."""
        ids: list[int] = []
        for part in self._split.split(text):
            if not part:
                continue
            tid = self._special.get(part)
            ids.extend([tid] if tid is not None else self.encode(part))
        return ids

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        # Specials, control pieces and the checkpoint's padding ids render as nothing, as in llama.cpp's
        # token_to_piece(special=False); the leading space of a "▁" piece is kept (the parser strips it).
        n = self.sp_vocab_size
        return b"".join(self._pieces[i] for i in ids if 0 <= i < n)

    def special_id(self, token: str) -> int | None:
        tid = self._special.get(token)
        return tid if tid is not None else self._control.get(token)

    @property
    def special_texts(self) -> Sequence[str]:
        return CHATGLM3_SPECIAL_TOKENS

    def is_eog(self, token_id: int) -> bool:
        return token_id == self.eos_id


def find_tokenizer_model(checkpoint_dir: str | os.PathLike[str]) -> Path:
    d = Path(checkpoint_dir)
    if not d.is_dir():
        raise ModelNotFoundError(f"checkpoint directory not found: {d}")
    p = d / TOKENIZER_FILE
    if not p.is_file():
        raise ModelLoadError(
            f"{d} has no {TOKENIZER_FILE}: a ChatGLM3 checkpoint ships its SentencePiece model by that name "
            "(GLM-4 checkpoints use a tiktoken vocabulary instead: load their -hf release)"
        )
    return p
