"""The llama.cpp library as glmkit loads it: the lazy import, a quiet log, the AMX work-around for
multi-token batches, GGUF checks, and the tokenizer over a llama vocabulary."""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from glmkit.errors import ModelLoadError, ModelNotFoundError

log = logging.getLogger(__name__)


def load_lib() -> Any:
    import llama_cpp

    return llama_cpp


class QuietLog:
    """llama.cpp prints its load log to stderr; route it to Python logging at debug level instead."""

    callback: Any = None
    lock = threading.Lock()
    # llama.cpp's last warnings and errors, to explain a failed call
    recent: ClassVar[collections.deque[str]] = collections.deque(maxlen=6)

    @classmethod
    def install(cls) -> None:
        with cls.lock:
            if cls.callback is not None:
                return
            lc = load_lib()

            def _cb(level: int, text: bytes, _user: Any) -> None:
                if level in (3, 4):  # GGML_LOG_LEVEL_WARN, _ERROR: kept to explain a failed call
                    cls.recent.append(text.decode("utf-8", "replace").strip())
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

            cls.callback = lc.llama_log_callback(_cb)
            lc.llama_log_set(cls.callback, ctypes.c_void_p(0))
            lc.llama_backend_init()


def cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_tile" in line.split()
    except OSError:
        return False
    return False


def default_extra_buffers() -> bool:
    """llama.cpp's extra CPU buffer types (AMX and weight repacking) crash multi-token batches with a
    segfault on AMX-capable VMs here (one-token decode works; any prompt longer than a token dies).
    Off where the CPU reports AMX; otherwise on (~15% faster decode). ``GLMKIT_LLAMA_EXTRA_BUFFERS=0/1``
    overrides."""
    env = os.environ.get("GLMKIT_LLAMA_EXTRA_BUFFERS")
    if env is not None:
        return env.strip() not in ("0", "false", "no", "")
    return not cpu_has_amx()


def check_gguf(path: Path) -> None:
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelNotFoundError(f"model path is not a file: {path}")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ModelLoadError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'): it is corrupt or another "
            "format; re-download or re-convert it"
        )


class LlamaTokenizer:
    """Tokenizer over a llama.cpp vocabulary. ``encode`` never parses special-token text."""

    def __init__(self, vocab: Any) -> None:
        self._lc = load_lib()
        self._vocab = vocab
        self.n_vocab = self._lc.llama_vocab_n_tokens(vocab)
        attr_special = self._lc.LLAMA_TOKEN_ATTR_CONTROL | self._lc.LLAMA_TOKEN_ATTR_USER_DEFINED
        self._special: dict[str, int] = {}
        for i in range(self.n_vocab):
            if self._lc.llama_vocab_get_attr(vocab, i) & attr_special:
                text = self._piece(i, special=True).decode("utf-8", "replace")
                if text:
                    self._special.setdefault(text, i)
        self._cache: dict[int, bytes] = {}

    def _tokenize(self, text: str, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (self._lc.llama_token * cap)()
        n = self._lc.llama_tokenize(self._vocab, data, len(data), buf, cap, False, parse_special)
        if n < 0:
            cap = -n
            buf = (self._lc.llama_token * cap)()
            n = self._lc.llama_tokenize(self._vocab, data, len(data), buf, cap, False, parse_special)
        return list(buf[:n])

    def encode(self, text: str) -> list[int]:
        return self._tokenize(text, parse_special=False) if text else []

    def encode_with_specials(self, text: str) -> list[int]:
        return self._tokenize(text, parse_special=True) if text else []

    def _piece(self, tid: int, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._lc.llama_token_to_piece(self._vocab, tid, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lc.llama_token_to_piece(self._vocab, tid, buf, -n, 0, special)
        return buf.raw[:n]

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        out = []
        for i in ids:
            if i < 0 or i >= self.n_vocab:
                continue
            piece = self._cache.get(i)
            if piece is None:
                piece = self._cache[i] = self._piece(i, special=False)
            out.append(piece)
        return b"".join(out)

    def special_id(self, token: str) -> int | None:
        return self._special.get(token)

    @property
    def special_texts(self) -> Sequence[str]:
        return list(self._special)

    def is_eog(self, token_id: int) -> bool:
        return bool(self._lc.llama_vocab_is_eog(self._vocab, token_id))
