"""The parts an intent classifier combines (``intent.IntentClassifier``): ``KernelPart`` (kernel ridge
regression over the e5 vector, optionally its LDA block, and the texts' hashed TF-IDF), ``LinearPart``
(logistic regression on the standardised vector) and ``LexicalPart`` (logistic regression on TF-IDF). Each
scores messages; the classifier fits their weights and the kernel's configuration on held-out data."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from glmkit.apps.lexical import Hasher, Sparse, analyze, build_vocab, featurize, train_sparse_softmax
from glmkit.errors import InvalidRequestError

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

MAX_KERNEL_EXAMPLES = 12_000  # the kernel matrix is n x n float32: 576 MB at the cap
LDA_SHRINK = 0.8
SMALL_BATCH = 16  # rows scored without BLAS threads (see rbf_kernel)


def train_softmax(
    x: F32, y: npt.NDArray[np.int64], n_classes: int, *, l2: float = 1e-3, epochs: int = 300, lr: float = 0.05
) -> tuple[F32, F32]:
    """Multinomial logistic regression, full batch with Adam. Features are standardised by the caller."""
    n, d = x.shape
    w = np.zeros((d, n_classes), np.float32)
    b = np.zeros(n_classes, np.float32)
    onehot = np.eye(n_classes, dtype=np.float32)[y]
    mw, vw, mb, vb = (np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b))
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        z = x @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / n
        gw = x.T @ g + l2 * w
        gb = g.sum(axis=0)
        mw = b1 * mw + (1 - b1) * gw
        vw = b2 * vw + (1 - b2) * gw * gw
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb * gb
        cw, cb = 1 - b1**t, 1 - b2**t
        w -= lr * (mw / cw) / (np.sqrt(vw / cb) + eps)
        b -= lr * (mb / cw) / (np.sqrt(vb / cb) + eps)
    return w, b


class Part(Protocol):
    """One view of a message: ``scores`` are combined linearly (logits or log-probabilities) across parts."""

    @property
    def needs_text(self) -> bool: ...

    def scores(self, x: F32, texts: Sequence[str] | None) -> F32: ...

    def arrays(self) -> dict[str, npt.NDArray[Any]]: ...


@dataclass
class LinearPart:
    """Logistic regression on the standardised vector (the previous default); scores are logits."""

    w: F32
    b: F32
    mean: F32
    scale: F32
    needs_text = False

    @classmethod
    def fit(
        cls, x: F32, y: I64, n_classes: int, *, l2: float = 1e-3, epochs: int = 300, seed: int = 0
    ) -> LinearPart:
        mean = x.mean(axis=0).astype(np.float32)
        scale = (x.std(axis=0) + 1e-6).astype(np.float32)
        w, b = train_softmax((x - mean) / scale, y, n_classes, l2=l2, epochs=epochs)
        return cls(w, b, mean, scale)

    def scores(self, x: F32, texts: Sequence[str] | None) -> F32:
        out: F32 = (((x - self.mean) / self.scale) @ self.w + self.b).astype(np.float32)
        return out

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {"w": self.w, "b": self.b, "mean": self.mean, "scale": self.scale}


def rbf_kernel(a: F32, b: F32, gamma: float, b_sq: F32 | None = None) -> F32:
    """exp(-gamma * |a_i - b_j|^2), built in place (one n x m array). A few rows (one message per turn) go
    through numpy's own loops: a multithreaded BLAS call would leave its threads spinning while the
    embedding engine runs next, which slowed a turn several times over on two cores."""
    k: F32 = (np.einsum("ij,kj->ik", a, b) if len(a) <= SMALL_BATCH else a @ b.T).astype(
        np.float32, copy=False
    )
    k *= -2.0
    k += np.einsum("ij,ij->i", a, a)[:, None]
    k += (np.einsum("ij,ij->i", b, b) if b_sq is None else b_sq)[None, :]
    np.maximum(k, 0.0, out=k)
    k *= np.float32(-gamma)
    np.exp(k, out=k)
    return k


def lda_projection(x: F32, y: I64, shrink: float = LDA_SHRINK) -> F32:
    """Coordinates of the Fisher discriminant subspace, whitened by the within-class scatter (shrunk towards
    a multiple of the identity): ``x @ P``, at most classes-1 columns. The subspace is spanned by
    ``Sw^-1 (class means - centre)``; whitening it needs only a classes x classes eigenproblem."""
    d = x.shape[1]
    present = np.unique(y)
    xd = x.astype(np.float64)
    means = np.stack([xd[y == c].mean(axis=0) for c in present])
    resid = xd - means[np.searchsorted(present, y)]
    sw = resid.T @ resid / len(xd)
    level = max(float(np.trace(sw)) / d, 1e-6 * float(xd.var(axis=0).sum()) / d, 1e-12)
    sw = (1 - shrink) * sw + shrink * level * np.eye(d)
    between = (means - means.mean(axis=0)).T  # d x classes, rank classes-1
    a = np.linalg.solve(sw, between)
    e, v = np.linalg.eigh(between.T @ a)  # = (Sw^-1/2 B)^T (Sw^-1/2 B)
    k = e > 1e-9 * max(float(e.max()), 1e-30)
    out: F32 = (a @ (v[:, k] / np.sqrt(e[k]))).astype(np.float32)
    return out


@dataclass
class KernelPart:
    """Kernel ridge regression onto one-hot labels; scores are the regression outputs (about 1 for the right
    intent, 0 for the others). The kernel is an RBF over [scaled vector, its LDA projection (possibly no
    columns)], plus, when ``hasher`` is set, ``lexical_weight`` times the cosine of the texts' TF-IDF rows
    (folded by the hasher): the lexical term is linear, so it is kept as ``lex_coef`` = the basis' folded
    rows transposed times ``coef``, and a message costs one folded row and one small product."""

    mean: F32
    scale: F32
    proj: F32
    basis: F32
    coef: F32
    gamma: float
    hasher: Hasher | None = None
    lex_coef: F32 | None = None  # hasher.dim x classes, the lexical weight included

    @property
    def needs_text(self) -> bool:
        return self.hasher is not None

    def features(self, x: F32) -> F32:
        z = ((x - self.mean) / self.scale).astype(np.float32)
        return np.concatenate([z, z @ self.proj], axis=1)

    def __post_init__(self) -> None:
        self.basis_sq: F32 = np.einsum("ij,ij->i", self.basis, self.basis)

    def scores(self, x: F32, texts: Sequence[str] | None) -> F32:
        k = rbf_kernel(self.features(x), self.basis, self.gamma, self.basis_sq)
        out: F32 = np.einsum("ik,kc->ic", k, self.coef) if len(k) <= SMALL_BATCH else k @ self.coef
        if self.hasher is not None and self.lex_coef is not None:
            if texts is None:
                raise InvalidRequestError("this intent model reads the words too: it needs the texts")
            if len(texts) <= SMALL_BATCH:  # no BLAS call (see rbf_kernel) and no 4,096-wide rows
                out += self.hasher.project(texts, self.lex_coef)
            else:
                out += self.hasher.transform(texts) @ self.lex_coef
        return out

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        out: dict[str, npt.NDArray[Any]] = {
            "mean": self.mean,
            "scale": self.scale,
            "proj": self.proj,
            "basis": self.basis,
            "coef": self.coef,
            "gamma": np.array(self.gamma, np.float64),
        }
        if self.hasher is not None and self.lex_coef is not None:
            out |= {"idf": self.hasher.idf, "lex_coef": self.lex_coef}
        return out

    @classmethod
    def fit_path(
        cls,
        x: F32,
        y: I64,
        n_classes: int,
        configs: Sequence[tuple[float, float, float]],
        *,
        docs: Sequence[list[str]] | None = None,
        seed: int = 0,
        on_solve: Callable[[], None] | None = None,
    ) -> list[KernelPart]:
        """One model per (discriminant weight, lexical weight, ridge) in ``configs``: the discriminant
        weight scales the LDA block (1: the same total variance as the standardised block, 0: no block),
        the lexical weight the TF-IDF cosine added to the kernel (it needs ``docs``, ``analyze``'d texts);
        models that differ only in the ridge share the kernel matrix and cost one solve each."""
        if docs is None and any(lex > 0 for _, lex, _ in configs):
            raise InvalidRequestError("a lexical kernel weight needs the texts")
        rng = np.random.default_rng(seed)
        mean = x.mean(axis=0).astype(np.float32)
        # one scale for every dimension: distances stay those of the embedding space (e5 is trained for
        # cosine similarity), and a dimension unused in training cannot dominate a query's distances
        scale = np.full(x.shape[1], max(float(np.sqrt(x.var(axis=0).mean())), 1e-6), np.float32)
        z = ((x - mean) / scale).astype(np.float32)
        lda = lda_projection(z, y)
        zp = z @ lda
        if lda.shape[1]:  # give the discriminant block the same total variance as the standardised one
            lda *= np.float32(math.sqrt(float(z.var(axis=0).sum()) / max(float(zp.var(axis=0).sum()), 1e-12)))
        keep = np.sort(rng.permutation(len(x))[:MAX_KERNEL_EXAMPLES])
        onehot = np.eye(n_classes, dtype=np.float32)[y[keep]]
        hasher: Hasher | None = None
        folded = gram = None
        if docs is not None and any(lex > 0 for _, lex, _ in configs):
            kept_docs = [docs[i] for i in keep]
            hasher = Hasher.fit(kept_docs)
            folded = hasher.fold(kept_docs)
            gram = folded @ folded.T
        out: dict[tuple[float, float, float], KernelPart] = {}
        for weight in sorted({w for w, _, _ in configs}):
            proj = (
                (lda * np.float32(math.sqrt(weight))) if weight > 0 else np.zeros((x.shape[1], 0), np.float32)
            )
            part = cls(mean, scale, proj, np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), 1.0)
            basis = part.features(x[keep])
            gamma = 1.0 / median_sq_distance(basis, np.random.default_rng(seed))
            k = rbf_kernel(basis, basis, gamma)
            diag = np.diag_indices_from(k)
            added = 0.0  # the lexical weight currently added to k
            for lex in sorted({lx for w, lx, _ in configs if w == weight}):
                if gram is not None and lex != added:
                    k += np.float32(lex - added) * gram
                    added = lex
                for w, lx, lam in configs:
                    if w == weight and lx == lex:
                        k[diag] += np.float32(lam)
                        coef = np.linalg.solve(k, onehot).astype(np.float32)
                        if on_solve is not None:
                            on_solve()
                        k[diag] -= np.float32(lam)
                        if lex > 0 and hasher is not None and folded is not None:
                            lex_coef = (np.float32(lex) * (folded.T @ coef)).astype(np.float32)
                            out[(w, lx, lam)] = cls(mean, scale, proj, basis, coef, gamma, hasher, lex_coef)
                        else:
                            out[(w, lx, lam)] = cls(mean, scale, proj, basis, coef, gamma)
            del k
        return [out[cfg] for cfg in configs]


def median_sq_distance(x: F32, rng: np.random.Generator, pairs: int = 500) -> float:
    """The median squared distance between random pairs of rows (the kernel width heuristic)."""
    n = len(x)
    if n < 2:
        return 1.0
    order = rng.permutation(n)[: 2 * pairs]
    half = len(order) // 2
    a, b = x[order[:half]], x[order[half : 2 * half]]
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    d = d[d > 1e-9]
    return float(np.median(d)) if d.size else 1.0


@dataclass
class LexicalPart:
    """Logistic regression on TF-IDF (sublinear tf, L2-normalised rows) of ``analyze``'s features; scores are
    log-probabilities."""

    vocab: dict[str, int]
    idf: F32
    w: F32
    b: F32
    needs_text = True

    def transform(self, texts: Sequence[str]) -> Sparse:
        return featurize([analyze(t) for t in texts], self.vocab, self.idf)

    def scores(self, x: F32, texts: Sequence[str] | None) -> F32:
        if texts is None:
            raise InvalidRequestError("the lexical part of the intent model needs the texts")
        z = self.transform(texts).dot(self.w) + self.b
        z -= z.max(axis=1, keepdims=True)
        out: F32 = (z - np.log(np.exp(z).sum(axis=1, keepdims=True))).astype(np.float32)
        return out

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {"idf": self.idf, "w": self.w, "b": self.b}

    @classmethod
    def fit(
        cls,
        docs: Sequence[list[str]],
        y: I64,
        n_classes: int,
        *,
        seed: int = 0,
    ) -> LexicalPart:
        """TF-IDF over ``docs``' features and a softmax trained on them (``train_sparse_softmax``'s settings)."""
        vocab, idf = build_vocab(docs)
        w, b = train_sparse_softmax(featurize(docs, vocab, idf), y, n_classes, seed=seed)
        return cls(vocab, idf, w, b)
