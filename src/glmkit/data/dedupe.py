"""Exact and near-duplicate removal over a stream of texts, keeping the first of each group.

- **Exact**: texts are normalised (NFKC, case-folded, whitespace and punctuation removed) and hashed
  (BLAKE2b, 64 bits); a later text with the same hash duplicates the first one.
- **Near**: each text becomes a set of shingles (character 5-grams by default, or jieba word n-grams),
  summarised by a MinHash signature of ``num_perm`` values. Locality-sensitive hashing splits the signature
  into ``bands`` × ``rows`` (chosen for the threshold as datasketch does, by minimising the areas of false
  positives and false negatives under the S-curve ``1 - (1 - s^rows)^bands``, here weighted 0.1/0.9 toward
  recall: 128 permutations at threshold 0.8 give 14 × 9, so a pair at similarity 0.8 becomes a candidate
  with probability 0.87 and one at 0.85 with 0.98); texts that share any band
  are candidates, and a candidate whose estimated Jaccard similarity (the fraction of equal signature
  values) reaches ``threshold`` is a duplicate. The text with the highest estimate is reported.

Memory grows with the number of *kept* texts, never with their length (the texts are not kept): an 8-byte
hash, ``4 × num_perm`` bytes of signature and one dict entry per band each — about 3 KB per kept text with
the defaults (200,000 texts ≈ 550 MB measured; exact-only ≈ 150 bytes per text).

Hash functions: shingles are hashed with CRC-32 (stable across runs, unlike Python's ``hash``), then
permuted by ``(a·x + b) mod 2^64 >> 32`` with random odd 64-bit ``a`` and random ``b`` from a fixed seed
(multiply-add-shift, a 2-independent family), computed for all permutations at once with numpy.
"""

from __future__ import annotations

import array
import hashlib
import unicodedata
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from glmkit.errors import InvalidRequestError

Kind = Literal["exact", "near"]
ShingleKind = Literal["char", "word"]
DEFAULT_NGRAM: dict[str, int] = {"char": 5, "word": 2}


@dataclass(frozen=True)
class Drop:
    """A dropped text: its line, the line it duplicates, how, and the estimated similarity (1.0 for exact)."""

    line: int
    duplicate_of: int
    kind: Kind
    similarity: float

    def as_dict(self) -> dict[str, object]:
        return {
            "line": self.line,
            "duplicate_of": self.duplicate_of,
            "kind": self.kind,
            "similarity": self.similarity,
        }


def normalize(text: str) -> str:
    """The form both checks compare: NFKC, case-folded, no whitespace, punctuation or control characters."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in text if unicodedata.category(c)[0] not in "PZC")


def char_shingles(text: str, n: int) -> set[str]:
    """Character n-grams of an already normalised text (the whole text when it is shorter than ``n``)."""
    if len(text) <= n:
        return {text} if text else set()
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def word_shingles(words: list[str], n: int) -> set[str]:
    """Word n-grams joined by a space (the whole sequence when it is shorter than ``n``)."""
    if len(words) <= n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def lsh_params(
    threshold: float, num_perm: int, fp_weight: float = 0.1, fn_weight: float = 0.9
) -> tuple[int, int]:
    """(bands, rows) with bands·rows ≤ num_perm minimising the weighted false-positive and false-negative
    areas under the S-curve. Recall is weighted up: every candidate is checked against the threshold
    with its signature anyway, so a false positive costs one comparison, a false negative a duplicate."""
    s = np.linspace(0.0, 1.0, 401)
    best: tuple[float, int, int] = (float("inf"), 1, num_perm)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - s**rows) ** bands  # probability that two texts of similarity s share a band
            fp = float(np.trapezoid(np.where(s < threshold, p, 0.0), s))
            fn = float(np.trapezoid(np.where(s >= threshold, 1.0 - p, 0.0), s))
            cost = fp_weight * fp + fn_weight * fn
            if cost < best[0]:
                best = (cost, bands, rows)
    return best[1], best[2]


class MinHasher:
    """MinHash signatures: ``signature(shingles)`` → uint32 array of length ``num_perm``."""

    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self._a = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
        self._b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signature(self, shingles: set[str]) -> npt.NDArray[np.uint32]:
        x = np.fromiter(
            (zlib.crc32(s.encode("utf-8")) for s in shingles), dtype=np.uint64, count=len(shingles)
        )
        # [num_perm, n]: wrapping uint64 arithmetic is the "mod 2^64"; the high 32 bits are the hash
        h = (self._a[:, None] * x[None, :] + self._b[:, None]) >> np.uint64(32)
        sig: npt.NDArray[np.uint32] = h.min(axis=1).astype(np.uint32)
        return sig


class Deduper:
    """Feed texts in order with ``check(line, text)``: ``None`` means keep (and remember), a ``Drop`` means
    the text duplicates an earlier kept one. Blank texts (nothing left after normalising) are always kept."""

    def __init__(
        self,
        threshold: float = 0.8,
        *,
        num_perm: int = 128,
        shingle: ShingleKind = "char",
        ngram: int | None = None,
        near: bool = True,
        seed: int = 1,
        words: Callable[[str], list[str]] | None = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise InvalidRequestError(f"threshold must be in (0, 1], got {threshold}", param="threshold")
        if not 16 <= num_perm <= 1024:
            raise InvalidRequestError(
                f"num_perm must be between 16 and 1024, got {num_perm}", param="num_perm"
            )
        if shingle not in DEFAULT_NGRAM:
            raise InvalidRequestError(f"shingle must be 'char' or 'word', got {shingle!r}", param="shingle")
        self.ngram = DEFAULT_NGRAM[shingle] if ngram is None else ngram
        if self.ngram < 1:
            raise InvalidRequestError(f"ngram must be at least 1, got {self.ngram}", param="ngram")
        self.threshold = threshold
        self.shingle = shingle
        self.near = near
        self._words = words
        self._hasher = MinHasher(num_perm, seed)
        self.bands, self.rows = lsh_params(threshold, num_perm)
        # compact state, since it grows with every kept text: 64-bit exact hashes, signatures in one
        # growing array, and one LSH dict whose value is a text index (a list only when keys collide)
        self._exact: dict[int, int] = {}  # exact hash → line
        self._lines = array.array("q")  # kept text index → its line
        self._sigs = np.empty((1024, num_perm), dtype=np.uint32)  # kept text index → signature
        self._buckets: dict[int, int | list[int]] = {}  # hash of (band, band values) → kept text index(es)

    def _shingles(self, norm: str) -> set[str]:
        if self.shingle == "char":
            return char_shingles(norm, self.ngram)
        if self._words is None:
            import jieba

            self._words = jieba.lcut
        return word_shingles([w for w in self._words(norm) if w.strip()], self.ngram)

    def _band_keys(self, sig: npt.NDArray[np.uint32]) -> list[int]:
        r = self.rows
        return [hash((i, sig[i * r : (i + 1) * r].tobytes())) for i in range(self.bands)]

    def _candidates(self, keys: list[int]) -> set[int]:
        found: set[int] = set()
        for key in keys:
            hit = self._buckets.get(key)
            if isinstance(hit, int):
                found.add(hit)
            elif hit is not None:
                found.update(hit)
        return found

    def _remember(self, line: int, sig: npt.NDArray[np.uint32], keys: list[int]) -> None:
        index = len(self._lines)
        if index == len(self._sigs):
            self._sigs = np.concatenate([self._sigs, np.empty_like(self._sigs)])
        self._sigs[index] = sig
        self._lines.append(line)
        for key in keys:
            hit = self._buckets.get(key)
            if hit is None:
                self._buckets[key] = index
            elif isinstance(hit, int):
                self._buckets[key] = [hit, index]
            else:
                hit.append(index)

    def check(self, line: int, text: str) -> Drop | None:
        norm = normalize(text)
        if not norm:
            return None
        digest = int.from_bytes(hashlib.blake2b(norm.encode("utf-8"), digest_size=8).digest())
        first = self._exact.get(digest)
        if first is not None:
            return Drop(line, first, "exact", 1.0)
        shingles = self._shingles(norm) if self.near else set()
        if not shingles:
            self._exact[digest] = line
            return None
        sig = self._hasher.signature(shingles)
        keys = self._band_keys(sig)
        best: tuple[float, int] | None = None
        for j in sorted(self._candidates(keys)):
            sim = float(np.mean(self._sigs[j] == sig))
            if sim >= self.threshold and (best is None or sim > best[0]):
                best = (sim, j)
        if best is not None:
            return Drop(line, self._lines[best[1]], "near", round(best[0], 4))
        self._exact[digest] = line
        self._remember(line, sig, keys)
        return None
