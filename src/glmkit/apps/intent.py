"""Intent classification for the customer-service bot.

The default is embeddings + a linear classifier: e5 vectors of the text (``query: ``) and multinomial
logistic regression trained with L2 (full-batch Adam on numpy; a few seconds for 10k examples). A model is
a folder: ``weights.npz`` (W, b), ``labels.json``, ``meta.json``. Classification of one text is one
embedding and one matrix product. For intents without training data ``LLMIntentClassifier`` asks the chat
model, constrained by a grammar to the label set, and reads its confidence from the token log-probabilities.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from glmkit.errors import InvalidRequestError
from glmkit.kb.embed import Embedder

F32 = npt.NDArray[np.float32]
TEXT_KEYS = ("text", "sentence", "query", "question", "utterance", "文本", "问题")
LABEL_KEYS = ("label", "category", "intent", "label_desc", "类别", "意图", "标签")


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


class IntentClassifier:
    def __init__(self, embedder: Embedder, labels: list[str], w: F32, b: F32, mean: F32, scale: F32) -> None:
        self.embedder = embedder
        self.labels = labels
        self.w, self.b, self.mean, self.scale = w, b, mean, scale

    @classmethod
    def train(
        cls,
        embedder: Embedder,
        texts: Sequence[str],
        labels: Sequence[str],
        *,
        l2: float = 1e-3,
        epochs: int = 300,
    ) -> IntentClassifier:
        if len(texts) != len(labels) or not texts:
            raise InvalidRequestError("need as many labels as texts, and at least one example")
        names = sorted(set(labels))
        if len(names) < 2:
            raise InvalidRequestError("need at least two different labels to train a classifier")
        x = embed_all(embedder, texts)
        return cls.fit(embedder, x, labels, l2=l2, epochs=epochs)

    @classmethod
    def fit(
        cls, embedder: Embedder, x: F32, labels: Sequence[str], *, l2: float = 1e-3, epochs: int = 300
    ) -> IntentClassifier:
        names = sorted(set(labels))
        idx = {n: i for i, n in enumerate(names)}
        y = np.array([idx[lbl] for lbl in labels], np.int64)
        mean = x.mean(axis=0)
        scale = x.std(axis=0) + 1e-6
        w, b = train_softmax((x - mean) / scale, y, len(names), l2=l2, epochs=epochs)
        return cls(embedder, names, w, b, mean.astype(np.float32), scale.astype(np.float32))

    def proba(self, x: F32) -> F32:
        z = ((x - self.mean) / self.scale) @ self.w + self.b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        out: F32 = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
        return out

    def predict_vectors(self, x: F32, top: int = 3) -> list[Prediction]:
        out = []
        for row in self.proba(x):
            order = np.argsort(-row)[:top]
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
        return self.predict_vectors(embed_all(self.embedder, [t[:2000] for t in texts]), top)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "weights.npz", w=self.w, b=self.b, mean=self.mean, scale=self.scale)
        (folder / "labels.json").write_text(json.dumps(self.labels, ensure_ascii=False, indent=1), "utf-8")
        meta = {
            "kind": "embedding-softmax",
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
            "created": time.time(),
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=1), "utf-8")

    @classmethod
    def load(cls, folder: Path, embedder: Embedder) -> IntentClassifier:
        try:
            meta = json.loads((folder / "meta.json").read_text("utf-8"))
            labels = json.loads((folder / "labels.json").read_text("utf-8"))
            z = np.load(folder / "weights.npz")
        except (OSError, ValueError) as e:
            raise InvalidRequestError(
                f"{folder} is not an intent model (train one with glmkit service train): {e}"
            ) from None
        if meta.get("embedder") != embedder.name:
            raise InvalidRequestError(
                f"{folder} was trained with {meta.get('embedder')}, not {embedder.name}"
            )
        return cls(embedder, list(labels), z["w"], z["b"], z["mean"], z["scale"])


def embed_all(embedder: Embedder, texts: Sequence[str], batch: int = 64) -> F32:
    parts = [embedder.embed(list(texts[i : i + batch]), "query") for i in range(0, len(texts), batch)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, embedder.dim), np.float32)


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    labels = sorted(set(gold) | set(pred))
    f1s = []
    for lbl in labels:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == lbl and p == lbl)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != lbl and p == lbl)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == lbl and p != lbl)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(f1s) / len(f1s) if f1s else 0.0


class LLMIntentClassifier:
    """Zero/few-shot intents with the chat model, for intents that have no training data: the reply is
    constrained by a grammar to one of the labels, and the confidence is the probability the model gave
    the label's tokens (from their log-probabilities; 1.0 where the backend reports none)."""

    def __init__(self, model: Any, intents: dict[str, str], examples: Sequence[tuple[str, str]] = ()) -> None:
        if len(intents) < 2:
            raise InvalidRequestError("the LLM intent classifier needs at least two intents")
        self.model = model
        self.intents = intents
        self.labels = sorted(intents)
        self.examples = list(examples)[:20]

    def classify(self, texts: Sequence[str], top: int = 3) -> list[Prediction]:
        from glmkit.runtime.chat import collect
        from glmkit.types import Constraint, LogprobDelta, Message, SamplingParams

        listing = "\n".join(f"- {lbl}: {desc}" if desc else f"- {lbl}" for lbl, desc in self.intents.items())
        shots = "\n".join(f"消息：{t}\n意图：{lbl}" for t, lbl in self.examples)
        out = []
        for t in texts:
            if not t.strip():
                raise InvalidRequestError("empty text", param="text")
            prompt = f"把用户消息归入下面一个意图，只输出意图名。\n意图：\n{listing}\n\n{shots}\n消息：{t[:1000]}\n意图："
            schema = json.dumps({"type": "string", "enum": self.labels})
            info = getattr(getattr(self.model, "engine", None), "info", None)
            can_score = info is not None and "logprobs" in info.features
            params = SamplingParams(
                temperature=0,
                max_tokens=24,
                constraint=Constraint("json_schema", schema),
                logprobs=20 if can_score else None,
            )
            deltas = list(self.model.stream([Message("user", prompt)], params=params))
            label, parsed = self._label(collect(iter(deltas)).text)
            scored = [tok for d in deltas if isinstance(d, LogprobDelta) for tok in d.tokens]
            conf = self._confidence(scored) if parsed else 0.0
            out.append(Prediction(label, conf, ((label, conf),)))
        return out

    def _label(self, text: str) -> tuple[str, bool]:
        """The label in the reply (exact JSON under a grammar; else the first label named in the text);
        an unreadable reply gives the first label with ``parsed`` False (confidence 0)."""
        try:
            v = json.loads(text)
            if v in self.labels:
                return str(v), True
        except json.JSONDecodeError:
            pass
        found = sorted((text.find(lbl), lbl) for lbl in self.labels if lbl in text)
        return (found[0][1], True) if found else (self.labels[0], False)

    def _confidence(self, tokens: Sequence[Any]) -> float:
        """P(label) relative to the other labels at the first token that tells them apart: among the top
        alternatives there, the share of the mass of those that begin some label (1.0 when unscored)."""
        for tok in tokens:
            text = tok.token.strip().strip('"')
            if not text:
                continue  # the JSON quote
            mass: dict[str, float] = {}
            for alt, lp, _ in tok.top:
                a = alt.strip().strip('"')
                if a and any(lbl.startswith(a) or a.startswith(lbl) for lbl in self.labels):
                    mass[a] = max(mass.get(a, -1e9), lp)
            mass.setdefault(text, tok.logprob)
            z = sum(float(np.exp(v)) for v in mass.values())
            return float(np.exp(mass[text])) / z if z > 0 else 1.0
        return 1.0
