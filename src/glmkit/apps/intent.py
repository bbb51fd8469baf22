"""Intent classification for the customer-service bot.

The default classifier (``glmkit service train``) is kernel ridge regression onto the one-hot intents. Its
kernel is an RBF over the e5 vector of the text (``query: ``) plus, when the texts are given (they are, from
the CLI, the HTTP routes and the bot), a small weight times the cosine of the texts' TF-IDF rows (words,
word bigrams, character n-grams; folded into 4,096 signed buckets, ``lexical.Hasher``), so two messages are
close when they mean the same or share rare words. The vector is centred and uniformly scaled (distances
stay those of the embedding space), optionally extended with its discriminant projection (LDA with the
within-class scatter shrunk towards the identity, scaled to the same total variance); the RBF width is the
median heuristic. Whether to add the projection, the lexical weight (0, 0.1 or 0.3), the ridge, and the
temperature of the softmax over the regression outputs are chosen by held-out likelihood (a stratified 20%
of the training data, or 5-fold cross-validation below 2,000 examples), and the model is then refitted on
everything, so ``confidence`` is a held-out-calibrated probability. Training is one kernel matrix per
(projection, lexical weight) and one linear solve per ridge; up to ``intent_parts.MAX_KERNEL_EXAMPLES``
examples are the kernel's basis (a random subset beyond that). Classifying one text is one embedding, one kernel row against
the basis and one folded TF-IDF row times a buckets x intents matrix.

Other parts, which ``IntentClassifier.fit``/``train`` take through ``parts``: ``lexical``, logistic
regression over the same TF-IDF features on a numpy sparse matrix, and ``linear``, logistic regression on the
standardised vector (an earlier default). Several parts are combined as ``softmax(sum_k w_k * score_k)``
with weights fitted by maximum likelihood on the held-out scores; ``predict_vectors`` without texts uses the
parts that need no text, with their own weights (a model whose every part reads words needs the texts).
``bench/intent.py`` measures every part.

A model is a folder: ``weights.npz``, ``labels.json``, ``vocab.json`` (each word-reading part's features)
and ``meta.json``; folders saved by earlier versions (format 2, and ``kind: embedding-softmax``) still load.
For intents without training data, ``intent_llm.LLMIntentClassifier`` asks the chat model instead.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from glmkit.apps.intent_parts import F32, I64, KernelPart, LexicalPart, LinearPart, Part
from glmkit.apps.lexical import MAX_TEXT, Hasher, analyze, softmax
from glmkit.errors import InvalidRequestError
from glmkit.kb.embed import Embedder

Progress = Callable[[int, int, str], None]
TEXT_KEYS = ("text", "sentence", "query", "question", "utterance", "文本", "问题")
LABEL_KEYS = ("label", "category", "intent", "label_desc", "类别", "意图", "标签")

PARTS = ("linear", "kernel", "lexical")
DEFAULT_PARTS = ("kernel",)
RIDGES = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
LDA_WEIGHTS = (0.0, 1.0)
LEXICAL_WEIGHTS = (0.0, 0.1, 0.3)  # the TF-IDF cosine's weight in the kernel (the RBF's diagonal is 1)
KERNEL_CONFIGS = tuple((w, lex, lam) for w in LDA_WEIGHTS for lex in LEXICAL_WEIGHTS for lam in RIDGES)
FORMAT = 3  # 3: vocab.json maps part -> features (2: the lexical part's list), the kernel may read words
READABLE_FORMATS = (2, 3)


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    top: tuple[tuple[str, float], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": round(self.confidence, 4),
            "top": [[lbl, round(p, 4)] for lbl, p in self.top],
        }


def read_examples(
    path: Path, text_col: str | None = None, label_col: str | None = None
) -> tuple[list[str], list[str]]:
    """Texts and labels from a CSV (header row) or JSON lines; columns found by common names."""
    if not path.is_file():
        raise InvalidRequestError(f"{path}: no such file", param="path")
    rows: list[dict[str, Any]]
    raw = path.read_text("utf-8-sig")
    if path.suffix.lower() in (".json", ".jsonl"):
        rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
    else:
        rows = list(csv.DictReader(raw.splitlines()))
    if not rows:
        raise InvalidRequestError(f"{path}: no examples", param="path")
    keys = list(rows[0])
    tc = text_col or next((k for k in TEXT_KEYS if k in keys), None)
    lc = label_col or next((k for k in LABEL_KEYS if k in keys), None)
    if label_col is None and "label_desc" in keys:
        lc = "label_desc"  # TNEWS: readable names over numeric codes
    if tc is None or lc is None or tc not in keys or lc not in keys:
        raise InvalidRequestError(
            f"{path}: need a text column ({'/'.join(TEXT_KEYS)}) and a label column ({'/'.join(LABEL_KEYS)}); found {keys}",
            param="path",
        )
    texts, labels = [], []
    for i, r in enumerate(rows, 2):
        t, lbl = str(r.get(tc) or "").strip(), str(r.get(lc) or "").strip()
        if not t or not lbl:
            raise InvalidRequestError(f"{path}: row {i} has an empty text or label", param="path")
        texts.append(t)
        labels.append(lbl)
    return texts, labels


# --- combining parts ---------------------------------------------------------------------------------


def stack_nll(scores: Sequence[F32], y: I64, w: npt.NDArray[np.float64]) -> float:
    z = sum(wk * s.astype(np.float64) for wk, s in zip(w, scores, strict=True))
    assert isinstance(z, np.ndarray)
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def fit_weights(
    scores: Sequence[F32], y: I64, start: Sequence[float], *, ridge: float = 1e-4, iters: int = 50
) -> npt.NDArray[np.float64]:
    """Non-negative weights w minimising the NLL of softmax(sum_k w_k scores_k) (+ a tiny ridge, so the
    weights stay finite when the held-out data are separable): projected Newton with backtracking. The
    objective is convex in w."""
    s = [v.astype(np.float64) for v in scores]
    rows = np.arange(len(y))
    w = np.array(start, np.float64)

    def objective(v: npt.NDArray[np.float64]) -> float:
        return stack_nll(s, y, v) + 0.5 * ridge * float(v @ v)  # type: ignore[arg-type]

    f = objective(w)
    for _ in range(iters):
        z = sum(wk * sk for wk, sk in zip(w, s, strict=True))
        assert isinstance(z, np.ndarray)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        mean = np.stack([(p * sk).sum(axis=1) for sk in s])  # E_p[score_k] per example
        grad = np.array([np.mean(mean[k] - sk[rows, y]) for k, sk in enumerate(s)]) + ridge * w
        hess = np.array(
            [
                [np.mean((p * si * sj).sum(axis=1) - mean[i] * mean[j]) for j, sj in enumerate(s)]
                for i, si in enumerate(s)
            ]
        ) + ridge * np.eye(len(s))
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(s)), grad)
        t = 1.0
        while t > 1e-4:
            cand = np.maximum(w - t * step, 0.0)
            fc = objective(cand)
            if fc < f - 1e-10:
                break
            t /= 2
        else:
            break
        if abs(f - fc) < 1e-7:
            w, f = cand, fc
            break
        w, f = cand, fc
    return w


def heldout_splits(y: I64, seed: int = 0) -> list[I64]:
    """Validation index sets: one stratified 20% split from 2,000 examples on, else 5 stratified folds
    (none below 10 examples)."""
    n = len(y)
    if n < 10:
        return []
    rng = np.random.default_rng(seed)
    k = 5
    fold = np.empty(n, np.int64)
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    folds = [np.flatnonzero(fold == j) for j in range(k)]
    return folds[:1] if n >= 2000 else folds


# --- the classifier ----------------------------------------------------------------------------------


class IntentClassifier:
    """Intents from labelled examples: ``parts`` (``kernel``, ``lexical``, ``linear``) whose scores are
    summed with ``weights`` (``vector_weights`` when only the vector is given), then softmax."""

    def __init__(
        self,
        embedder: Embedder,
        labels: list[str],
        parts: dict[str, Part],
        weights: dict[str, float],
        vector_weights: dict[str, float] | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.embedder = embedder
        self.labels = labels
        self.parts = parts
        self.weights = weights
        self.vector_weights = vector_weights if vector_weights is not None else weights
        self.info = info or {}

    @classmethod
    def train(
        cls,
        embedder: Embedder,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        parts: Sequence[str] = DEFAULT_PARTS,
        l2: float = 1e-3,
        epochs: int = 300,
        progress: Progress | None = None,
    ) -> IntentClassifier:
        """Embed ``texts`` and ``fit``; ``progress(done, total, stage)`` is called as the embedding and the
        fitting advance (two runs from 0 to total: ``embedding``, then ``fitting``)."""
        if len(texts) != len(labels) or not texts:
            raise InvalidRequestError("need as many labels as texts, and at least one example")
        if len(set(labels)) < 2:
            raise InvalidRequestError("need at least two different labels to train a classifier")
        x = embed_all(embedder, [t[:MAX_TEXT] for t in texts], progress=progress)
        return cls.fit(embedder, x, labels, texts=texts, parts=parts, l2=l2, epochs=epochs, progress=progress)

    @classmethod
    def fit(
        cls,
        embedder: Embedder,
        x: F32,
        labels: Sequence[str],
        *,
        texts: Sequence[str] | None = None,
        parts: Sequence[str] | None = None,
        l2: float = 1e-3,
        epochs: int = 300,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> IntentClassifier:
        """Train on vectors ``x`` (and ``texts``, which the lexical part needs); ``parts`` default to
        ``DEFAULT_PARTS``. The ridge and the weights are chosen on held-out parts of this data only."""
        names = sorted(set(labels))
        if len(names) < 2 or len(labels) != len(x) or (texts is not None and len(texts) != len(x)):
            raise InvalidRequestError("need one label per vector (and per text) and at least two labels")
        chosen = list(parts) if parts is not None else list(DEFAULT_PARTS)
        unknown = [p for p in chosen if p not in PARTS]
        if unknown or not chosen:
            raise InvalidRequestError(f"unknown intent model parts {unknown}; known: {', '.join(PARTS)}")
        if texts is None and "lexical" in chosen:
            raise InvalidRequestError("the lexical part needs the texts")
        chosen = [p for p in PARTS if p in chosen]
        idx = {n: i for i, n in enumerate(names)}
        y = np.array([idx[lbl] for lbl in labels], np.int64)
        c = len(names)
        docs = (
            [analyze(t) for t in texts] if texts is not None and {"lexical", "kernel"} & set(chosen) else []
        )
        # without the texts the kernel is the RBF alone
        configs = [cfg for cfg in KERNEL_CONFIGS if docs or cfg[1] == 0.0]
        x = np.asarray(x, np.float32)
        t0 = time.perf_counter()

        splits = heldout_splits(y, seed)
        # progress counts model fits: one per kernel solve, one per other part, held-out ones and the final
        steps = [
            0,
            sum((len(configs) * len(splits) + 1) if p == "kernel" else len(splits) + 1 for p in chosen),
        ]

        def step() -> None:
            steps[0] += 1
            if progress is not None:
                progress(steps[0], steps[1], "fitting")

        def train_part(name: str, rows: I64, configs: Sequence[tuple[float, float, float]]) -> list[Part]:
            if name == "kernel":
                part_docs = [docs[i] for i in rows] if docs else None
                return list(
                    KernelPart.fit_path(
                        x[rows], y[rows], c, configs, docs=part_docs, seed=seed, on_solve=step
                    )
                )
            part: Part
            if name == "linear":
                part = LinearPart.fit(x[rows], y[rows], c, l2=l2, epochs=epochs)
            else:
                part = LexicalPart.fit([docs[i] for i in rows], y[rows], c, seed=seed)
            step()
            return [part]

        # held-out scores of every part (every configuration of the kernel)
        held: dict[str, list[F32]] = {}
        val = np.concatenate(splits) if splits else np.zeros(0, np.int64)
        for name in chosen:
            per_split: list[list[F32]] = []
            for v in splits:
                tr = np.setdiff1d(np.arange(len(y)), v)
                models = train_part(name, tr, configs)
                per_split.append(
                    [m.scores(x[v], [texts[i] for i in v] if texts is not None else None) for m in models]
                )
            if per_split:
                held[name] = [np.concatenate([s[j] for s in per_split]) for j in range(len(per_split[0]))]
        yv = y[val]
        start = {"linear": 1.0, "kernel": 10.0, "lexical": 1.0}
        config = (0.0, 0.0, 1.0)  # without held-out data: the RBF alone, ridge 1
        if "kernel" in held:  # the configuration whose held-out scores, scaled, give the lowest NLL
            fits = [
                (stack_nll([s], yv, fit_weights([s], yv, [10.0])), i) for i, s in enumerate(held["kernel"])
            ]
            best = min(fits)[1]
            config = configs[best]
            held["kernel"] = [held["kernel"][best]]
        final: dict[str, Part] = {name: train_part(name, np.arange(len(y)), [config])[0] for name in chosen}
        weights, vector_weights = dict.fromkeys(chosen, 0.0), dict.fromkeys(chosen, 0.0)
        nll: dict[str, float] = {}
        for target, use in (
            (weights, chosen),
            (vector_weights, [p for p in chosen if not final[p].needs_text]),
        ):
            if not use:
                continue
            if held:
                scores = [held[p][0] for p in use]
                w = fit_weights(scores, yv, [start[p] for p in use])
                nll["+".join(use)] = round(stack_nll(scores, yv, w), 4)
            else:  # too few examples to hold any out
                w = np.array([start[p] for p in use])
            target.update({p: float(v) for p, v in zip(use, w, strict=True)})
        info = {
            "examples": len(y),
            "kernel": (
                {"lda_weight": config[0], "lexical_weight": config[1], "ridge": config[2]}
                if "kernel" in chosen
                else None
            ),
            "heldout": len(val),
            "heldout_nll": nll,
            "train_seconds": round(time.perf_counter() - t0, 1),
        }
        return cls(embedder, names, final, weights, vector_weights, info)

    def part_scores(self, x: F32, texts: Sequence[str] | None = None) -> dict[str, F32]:
        """Each part's raw scores (argmax = that part's own prediction)."""
        return {
            name: part.scores(x, texts)
            for name, part in self.parts.items()
            if texts is not None or not part.needs_text
        }

    def proba(self, x: F32, texts: Sequence[str] | None = None) -> F32:
        """Class probabilities; with ``texts`` every part counts, without them the vector parts only."""
        x = np.asarray(x, np.float32)
        if texts is not None and len(texts) != len(x):
            raise InvalidRequestError("need one text per vector")
        use_text = texts is not None or not any(p.needs_text for p in self.parts.values())
        weights = self.weights if use_text else self.vector_weights
        use = [n for n, p in self.parts.items() if use_text or not p.needs_text]
        if not use:
            raise InvalidRequestError(
                "this intent model reads the words as well as the vector: give the texts"
            )
        z = np.zeros((len(x), len(self.labels)), np.float32)
        for name in use:
            if weights.get(name, 0.0) > 0.0:
                z += np.float32(weights[name]) * self.parts[name].scores(x, texts)
        return softmax(z)

    def predict_vectors(self, x: F32, top: int = 3, texts: Sequence[str] | None = None) -> list[Prediction]:
        out = []
        for row in self.proba(x, texts):
            order = np.argsort(-row, kind="stable")[:top]
            out.append(
                Prediction(
                    self.labels[order[0]],
                    float(row[order[0]]),
                    tuple((self.labels[i], float(row[i])) for i in order),
                )
            )
        return out

    def classify(self, texts: Sequence[str], top: int = 3) -> list[Prediction]:
        for i, t in enumerate(texts):
            if not t.strip():
                raise InvalidRequestError(f"text {i} is empty", param="text")
        cut = [t[:MAX_TEXT] for t in texts]
        return self.predict_vectors(embed_all(self.embedder, cut), top, cut)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"{name}.{k}": v for name, part in self.parts.items() for k, v in part.arrays().items()}
        np.savez(folder / "weights.npz", **arrays)  # type: ignore[arg-type]
        vocab: dict[str, list[str]] = {}  # each text-reading part's features, in column order
        for name, part in self.parts.items():
            words: dict[str, int] | None = None
            if isinstance(part, LexicalPart):
                words = part.vocab
            elif isinstance(part, KernelPart) and part.hasher is not None:
                words = part.hasher.vocab
            if words:
                vocab[name] = sorted(words, key=words.__getitem__)
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
        (folder / "labels.json").write_text(json.dumps(self.labels, ensure_ascii=False, indent=1), "utf-8")
        meta = {
            "kind": "intent-ensemble",
            "format": FORMAT,
            "parts": list(self.parts),
            "weights": self.weights,
            "vector_weights": self.vector_weights,
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
            "info": self.info,
            "created": time.time(),
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=1), "utf-8")

    @classmethod
    def load(cls, folder: Path, embedder: Embedder) -> IntentClassifier:
        retrain = "train one with glmkit service train DATA --out DIR"
        try:
            meta = json.loads((folder / "meta.json").read_text("utf-8"))
            labels = json.loads((folder / "labels.json").read_text("utf-8"))
            with np.load(folder / "weights.npz") as z:
                arrays = {k: z[k] for k in z.files}
            kind = meta.get("kind")
            vocab_file = folder / "vocab.json"
            vocabs = json.loads(vocab_file.read_text("utf-8")) if vocab_file.exists() else {}
            if isinstance(vocabs, list):  # format 2: the lexical part's features only
                vocabs = {"lexical": vocabs}
        except (OSError, ValueError) as e:
            raise InvalidRequestError(f"{folder} is not an intent model ({retrain}): {e}") from None
        if meta.get("embedder") != embedder.name:
            raise InvalidRequestError(
                f"{folder} was trained with {meta.get('embedder')}, not {embedder.name}"
            )
        if kind == "embedding-softmax":  # saved before the ensemble: logistic regression on the vector
            part = LinearPart(arrays["w"], arrays["b"], arrays["mean"], arrays["scale"])
            return cls(embedder, list(labels), {"linear": part}, {"linear": 1.0})
        if kind != "intent-ensemble" or meta.get("format") not in READABLE_FORMATS:
            raise InvalidRequestError(
                f"{folder}: intent model kind {kind!r} format {meta.get('format')!r} is not one this glmkit "
                f"reads; {retrain}"
            )
        try:
            parts: dict[str, Part] = {}
            for name in meta["parts"]:
                a = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(name + ".")}
                if name == "linear":
                    parts[name] = LinearPart(a["w"], a["b"], a["mean"], a["scale"])
                elif name == "kernel":
                    hasher, lex_coef = None, None
                    if "lex_coef" in a:  # the kernel reads the words too
                        lex_coef = a["lex_coef"]
                        words = {f: i for i, f in enumerate(vocabs["kernel"])}
                        hasher = Hasher(words, a["idf"], int(lex_coef.shape[0]))
                    parts[name] = KernelPart(
                        a["mean"],
                        a["scale"],
                        a["proj"],
                        a["basis"],
                        a["coef"],
                        float(a["gamma"]),
                        hasher,
                        lex_coef,
                    )
                elif name == "lexical":
                    vocab = {f: i for i, f in enumerate(vocabs["lexical"])}
                    parts[name] = LexicalPart(vocab, a["idf"], a["w"], a["b"])
                else:
                    raise KeyError(name)
        except KeyError as e:
            raise InvalidRequestError(f"{folder}: incomplete intent model (missing {e}); {retrain}") from None
        return cls(
            embedder,
            list(labels),
            parts,
            dict(meta["weights"]),
            dict(meta["vector_weights"]),
            meta.get("info"),
        )


def embed_all(
    embedder: Embedder, texts: Sequence[str], batch: int = 64, progress: Progress | None = None
) -> F32:
    parts = []
    for i in range(0, len(texts), batch):
        parts.append(embedder.embed(list(texts[i : i + batch]), "query"))
        if progress is not None:
            progress(min(i + batch, len(texts)), len(texts), "embedding")
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, embedder.dim), np.float32)
