"""A fast deterministic embedder for tests: character bigrams hashed into 384 dims."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class HashEmbedder:
    """Character-bigram hashing into 384 dims, L2-normalised: similar texts share bigrams (a real, if crude,
    embedding; it makes vector search testable in milliseconds)."""

    name = "hash-bigrams"
    dim = 384

    def embed(self, texts: Sequence[str], input_type: str = "passage") -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            t = "".join(c for c in t.lower() if c.isalnum())
            for a, b in itertools.pairwise(t):
                h = int.from_bytes(hashlib.blake2b((a + b).encode(), digest_size=4).digest(), "little")
                out[i, h % self.dim] += 1.0
            n = np.linalg.norm(out[i])
            if n:
                out[i] /= n
        return out

    def count_tokens(self, text: str) -> int:
        return len(text)
