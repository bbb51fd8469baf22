"""The intent classifier: training, saving, loading, confidence, the CLI, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from glmkit.apps.intent import IntentClassifier, macro_f1, read_examples, train_softmax
from glmkit.errors import InvalidRequestError
from kb_fakes import HashEmbedder

EXAMPLES = {
    "refund": [
        "我要退款",
        "怎么申请退款",
        "退货退款流程是什么",
        "钱什么时候退回来",
        "申请退款要多久",
        "不想要了能退吗",
    ],
    "shipping": ["快递到哪了", "什么时候发货", "物流信息怎么查", "包裹还没到", "发货要几天", "能加急配送吗"],
    "invoice": [
        "怎么开发票",
        "发票抬头写错了",
        "电子发票在哪下载",
        "能开增值税发票吗",
        "发票什么时候寄",
        "补开发票",
    ],
}


def write_csv(path: Path) -> Path:
    rows = ["text,category"] + [f"{t},{lbl}" for lbl, ts in EXAMPLES.items() for t in ts]
    path.write_text("\n".join(rows), "utf-8")
    return path


def test_softmax_learns_a_separable_problem() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.3, (50, 4)) for c in (-2, 0, 2)]).astype(np.float32)
    y = np.repeat(np.arange(3), 50)
    w, b = train_softmax(x, y, 3)
    assert ((x @ w + b).argmax(1) == y).mean() > 0.95


def test_train_save_load_classify(tmp_path: Path) -> None:
    texts, labels = read_examples(write_csv(tmp_path / "i.csv"))
    clf = IntentClassifier.train(HashEmbedder(), texts, labels)
    clf.save(tmp_path / "m")
    loaded = IntentClassifier.load(tmp_path / "m", HashEmbedder())
    preds = loaded.classify(["退款申请要多久", "快递什么时候发货", "发票抬头怎么改"])
    assert [p.label for p in preds] == ["refund", "shipping", "invoice"]
    assert all(0 < p.confidence <= 1 and p.top[0][0] == p.label for p in preds)
    assert sum(pr for _, pr in loaded.classify(["x 发票"], top=3)[0].top) == pytest.approx(1.0, abs=1e-4)


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="two different labels"):
        IntentClassifier.train(HashEmbedder(), ["a", "b"], ["x", "x"])
    (tmp_path / "bad.csv").write_text("foo,bar\n1,2\n", "utf-8")
    with pytest.raises(InvalidRequestError, match="text column"):
        read_examples(tmp_path / "bad.csv")
    with pytest.raises(InvalidRequestError, match="not an intent model"):
        IntentClassifier.load(tmp_path, HashEmbedder())
    clf = IntentClassifier.train(HashEmbedder(), *read_examples(write_csv(tmp_path / "i.csv")))
    with pytest.raises(InvalidRequestError, match="empty"):
        clf.classify(["  "])


def test_macro_f1() -> None:
    assert macro_f1(["a", "a", "b", "b"], ["a", "a", "b", "b"]) == 1.0
    assert macro_f1(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx((2 / 3 + 0.8) / 2)


def test_cli_train_and_classify_with_the_real_embedder(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "i.csv")
    run = [sys.executable, "-m", "glmkit", "service"]
    r = subprocess.run(
        [*run, "train", str(data), "--out", str(tmp_path / "m"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"model": str(tmp_path / "m"), "examples": 18, "labels": 3}
    r = subprocess.run(
        [*run, "classify", str(tmp_path / "m"), "--json"],
        input="我的快递怎么还没到\n退款多久到账\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["label"] for o in out] == ["shipping", "refund"] and all(o["confidence"] > 0.4 for o in out)
