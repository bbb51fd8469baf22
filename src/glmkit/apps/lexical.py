"""Lexical features of short texts, shared by the intent classifier's parts: ``analyze`` (words, word
bigrams, character n-grams; jieba inside Chinese runs), TF-IDF rows in a small numpy CSR (``Sparse``),
multinomial logistic regression on those rows, and ``Hasher``, which folds the TF-IDF rows into a fixed
number of signed buckets (feature hashing) so the kernel part can use them as a dense block."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from glmkit.kb.text import jieba_module

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
MAX_TEXT = 2000
HASH_DIM = 4096


def softmax(z: F32) -> F32:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    out: F32 = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


# --- lexical features: a small numpy CSR -------------------------------------------------------------

_WORD = re.compile(r"\w+|[^\w\s]")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def analyze(text: str) -> list[str]:
    """Lexical features of a text: ``w:`` words (jieba words inside Chinese runs), ``b:`` word bigrams and
    ``c:`` character n-grams (2-5 inside each padded word; 1-3 inside Chinese runs)."""
    tokens = _WORD.findall(text[:MAX_TEXT].lower())
    words: list[str] = []
    grams: list[str] = []
    for tok in tokens:
        if _CJK.search(tok):
            words.extend(w for w in jieba_module().lcut(tok) if w.strip())
            grams.extend(tok[i : i + n] for n in (1, 2, 3) for i in range(len(tok) - n + 1))
        else:
            words.append(tok)
            p = f" {tok} "
            grams.extend(p[i : i + n] for n in (2, 3, 4, 5) for i in range(len(p) - n + 1))
    return (
        ["w:" + w for w in words]
        + ["b:" + a + " " + b for a, b in pairwise(words)]
        + ["c:" + g for g in grams]
    )


@dataclass
class Sparse:
    """Rows of a sparse matrix (CSR): row i is ``indices/data[indptr[i]:indptr[i+1]]``."""

    indptr: I64
    indices: I64
    data: F32
    n_cols: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def rows(self, idx: I64) -> Sparse:
        lens = np.diff(self.indptr)[idx]
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        pos = np.repeat(self.indptr[idx] - indptr[:-1], lens) + np.arange(indptr[-1])
        return Sparse(indptr, self.indices[pos], self.data[pos], self.n_cols)

    def dot(self, w: F32) -> F32:
        """self @ w"""
        contrib = np.concatenate([w[self.indices] * self.data[:, None], np.zeros((1, w.shape[1]), w.dtype)])
        out: F32 = np.add.reduceat(contrib, np.minimum(self.indptr[:-1], len(self.indices)), axis=0)
        out[self.indptr[1:] == self.indptr[:-1]] = 0.0
        return out

    def tdot(self, g: F32) -> F32:
        """self.T @ g"""
        rows = np.repeat(np.arange(self.n_rows), np.diff(self.indptr))
        order = np.argsort(self.indices, kind="stable")
        cols, first = np.unique(self.indices[order], return_index=True)
        out = np.zeros((self.n_cols, g.shape[1]), g.dtype)
        if len(order):
            out[cols] = np.add.reduceat(g[rows[order]] * self.data[order][:, None], first, axis=0)
        return out


def build_vocab(docs: Sequence[list[str]], min_df: int = 2) -> tuple[dict[str, int], F32]:
    """Words and bigrams seen at least once, character n-grams seen in ``min_df`` texts; smooth idf."""
    df: Counter[str] = Counter()
    for d in docs:
        df.update(set(d))
    feats = sorted(f for f, c in df.items() if c >= min_df or not f.startswith("c:"))
    n = len(docs)
    idf = np.array([math.log((1 + n) / (1 + df[f])) + 1 for f in feats], np.float32)
    return {f: i for i, f in enumerate(feats)}, idf


def featurize(docs: Sequence[list[str]], vocab: Mapping[str, int], idf: F32) -> Sparse:
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for d in docs:
        counts = Counter(vocab[f] for f in d if f in vocab)
        row = sorted(counts.items())
        vals = [(1.0 + math.log(c)) * float(idf[i]) for i, c in row]
        norm = math.sqrt(sum(v * v for v in vals)) or 1.0
        indices.extend(i for i, _ in row)
        values.extend(v / norm for v in vals)
        indptr.append(len(indices))
    return Sparse(
        np.array(indptr, np.int64), np.array(indices, np.int64), np.array(values, np.float32), len(vocab)
    )


def train_sparse_softmax(
    x: Sparse,
    y: I64,
    n_classes: int,
    *,
    l2: float = 1e-5,
    lr: float = 0.02,
    batch: int = 256,
    min_steps: int = 300,
    epochs: int = 10,
    seed: int = 0,
) -> tuple[F32, F32]:
    """Multinomial logistic regression on sparse rows, minibatch Adam (at least ``min_steps`` steps)."""
    rng = np.random.default_rng(seed)
    n = x.n_rows
    w = np.zeros((x.n_cols, n_classes), np.float32)
    b = np.zeros(n_classes, np.float32)
    mw, vw, mb, vb = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    steps_per_epoch = math.ceil(n / batch)
    epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
    b1, b2, eps = np.float32(0.9), np.float32(0.999), np.float32(1e-8)
    t = 0
    for _ in range(epochs):
        perm = rng.permutation(n)
        for i in range(0, n, batch):
            rows = perm[i : i + batch]
            xb = x.rows(rows)
            g = (softmax(xb.dot(w) + b) - onehot[rows]) / np.float32(len(rows))
            gw = xb.tdot(g)
            gw += np.float32(l2) * w
            gb = g.sum(axis=0)
            t += 1
            cw, cb = np.float32(1 - 0.9**t), np.float32(1 - 0.999**t)
            mw *= b1
            mw += (1 - b1) * gw
            vw *= b2
            vw += (1 - b2) * gw * gw
            w -= np.float32(lr) * (mw / cw) / (np.sqrt(vw / cb) + eps)
            mb = b1 * mb + (1 - b1) * gb
            vb = b2 * vb + (1 - b2) * gb * gb
            b -= np.float32(lr) * (mb / cw) / (np.sqrt(vb / cb) + eps)
    return w, b


@dataclass
class Hasher:
    """TF-IDF rows over ``vocab`` folded into ``dim`` buckets, each feature with a sign (both from a
    blake2b of the feature, so they are the same in every process): the dot product of two folded rows is
    their cosine similarity plus the noise of bucket collisions (a few hundredths at 4,096 buckets for
    short texts)."""

    vocab: dict[str, int]
    idf: F32
    dim: int = HASH_DIM

    def __post_init__(self) -> None:
        feats = sorted(self.vocab, key=self.vocab.__getitem__)
        h = np.array(
            [int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little") for f in feats],
            np.uint64,
        )
        self.bucket: I64 = (h % np.uint64(self.dim)).astype(np.int64)
        self.sign: F32 = np.where((h >> np.uint64(63)) == 1, 1.0, -1.0).astype(np.float32)

    @classmethod
    def fit(cls, docs: Sequence[list[str]], dim: int = HASH_DIM) -> Hasher:
        vocab, idf = build_vocab(docs)
        return cls(vocab, idf, dim)

    def fold(self, docs: Sequence[list[str]]) -> F32:
        s = featurize(docs, self.vocab, self.idf)
        out = np.zeros((s.n_rows, self.dim), np.float32)
        rows = np.repeat(np.arange(s.n_rows), np.diff(s.indptr))
        np.add.at(out, (rows, self.bucket[s.indices]), s.data * self.sign[s.indices])
        return out

    def transform(self, texts: Sequence[str]) -> F32:
        return self.fold([analyze(t) for t in texts])

    def project(self, texts: Sequence[str], coef: F32) -> F32:
        """``transform(texts) @ coef`` (coef: dim x k) without building the folded rows: each text's few
        features pick their buckets' rows of ``coef`` (what one message per turn costs)."""
        s = featurize([analyze(t) for t in texts], self.vocab, self.idf)
        out = np.zeros((s.n_rows, coef.shape[1]), np.float32)
        for i in range(s.n_rows):
            idx = s.indices[s.indptr[i] : s.indptr[i + 1]]
            out[i] = (s.data[s.indptr[i] : s.indptr[i + 1]] * self.sign[idx]) @ coef[self.bucket[idx]]
        return out
