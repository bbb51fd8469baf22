"""Hybrid fusion (z-scores of each list, mixed 0.7 : 0.3) and the section title's share of a chunk's
vector. Weights chosen on bench/data/debian_faq_colloquial_dev.jsonl and the answers suite (docs/kb.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from glmkit.kb.service import TITLE_WEIGHT, VECTOR_WEIGHT, KnowledgeBases, fuse, section_title
from glmkit.kb.splitter import Piece
from kb_fakes import HashEmbedder


def test_one_list_alone_keeps_its_order() -> None:
    vec = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
    assert list(sorted((f := fuse(vec, [])), key=lambda c: -f[c])) == ["a", "b", "c"]
    bm = [("x", 12.0), ("y", 3.0)]
    assert list(sorted((f := fuse([], bm)), key=lambda c: -f[c])) == ["x", "y"]
    assert fuse([], []) == {}


def test_scores_are_z_scores_mixed_by_weight_and_a_missing_chunk_gets_the_lists_floor() -> None:
    vec = [("a", 0.9), ("b", 0.8), ("c", 0.7)]  # z: +1.2247, 0, -1.2247
    bm = [("b", 10.0), ("d", 2.0)]  # z: +1, -1
    f = fuse(vec, bm)
    z = 1.5**0.5
    assert f["a"] == pytest.approx(VECTOR_WEIGHT * z + (1 - VECTOR_WEIGHT) * -1)
    assert f["b"] == pytest.approx(VECTOR_WEIGHT * 0 + (1 - VECTOR_WEIGHT) * 1)
    assert f["c"] == pytest.approx(VECTOR_WEIGHT * -z + (1 - VECTOR_WEIGHT) * -1)
    assert f["d"] == pytest.approx(VECTOR_WEIGHT * -z + (1 - VECTOR_WEIGHT) * -1)
    assert set(f) == {"a", "b", "c", "d"}


def test_the_gap_between_scores_counts_not_only_the_rank() -> None:
    # The keyword list's top hit is barely ahead of its second: it cannot outvote a clear vector winner.
    # (Reciprocal rank fusion, k = 60, ranks "k" first: 1/62 + 1/61 against 1/61 + 1/63.)
    vec = [("v", 0.95), ("k", 0.80), ("c", 0.79), ("d", 0.78)]
    bm = [("k", 5.01), ("e", 5.00), ("v", 4.99), ("f", 1.0), ("g", 0.9)]
    f = fuse(vec, bm)
    assert max(f, key=lambda c: f[c]) == "v"


def test_equal_scores_in_a_list_give_zero_not_a_division_error() -> None:
    f = fuse([("a", 0.5), ("b", 0.5)], [])
    assert f == {"a": 0.0, "b": 0.0}


def test_section_title_is_the_last_part_of_the_heading_path() -> None:
    assert section_title("第 8 章 软件包 > 8.5. 如何查出文件属于哪个包？") == "8.5. 如何查出文件属于哪个包？"
    assert section_title("安装") == "安装"
    assert section_title("") == ""


class Recording(HashEmbedder):
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str], input_type: str = "passage") -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return super().embed(texts, input_type)


def test_a_chunk_vector_adds_its_section_titles_vector_embedded_once(tmp_path: Path) -> None:
    from glmkit.kb.stores import open_store

    emb = Recording()
    store = open_store(None, tmp_path)
    kbs = KnowledgeBases(store, lambda: emb)
    pieces = [
        Piece("第一段正文，讲的是删除软件包。", "x", "手册 > 删除软件包"),
        Piece("第二段正文，仍然讲删除。", "x", "手册 > 删除软件包"),
        Piece("没有标题的一段。", "y", ""),
    ]
    chunks = kbs._embed(pieces)
    embedded = [t for call in emb.calls for t in call]
    assert embedded.count("删除软件包") == 1  # the title once, however many chunks it heads
    base = HashEmbedder()
    title = base.embed(["删除软件包"])[0]
    for p, c in zip(pieces, chunks, strict=True):
        own = base.embed([p.indexed])[0]
        want = own + TITLE_WEIGHT * title if p.heading else own
        want = want / np.linalg.norm(want)
        np.testing.assert_allclose(c.vector, want, atol=1e-6)
        assert np.linalg.norm(c.vector) == pytest.approx(1.0, abs=1e-6)
    store.close()


def test_search_finds_a_section_by_its_title(tmp_path: Path) -> None:
    """End to end on the store: the title's vector lifts every chunk of its section."""
    from glmkit.kb.stores import open_store

    doc = tmp_path / "manual.md"
    doc.write_text(
        "# 手册\n\n## 退款到账时间\n审核通过后，款项三到五个工作日原路退回。\n\n"
        "## 配送\n我们使用顺丰快递，下单后四十八小时内发货。\n",
        "utf-8",
    )
    store = open_store(None, tmp_path)
    kbs = KnowledgeBases(store, HashEmbedder)
    kbs.create("m")
    kbs.add("m", [doc])
    hits = kbs.search(["m"], "退款到账时间", k=2, mode="vector")
    assert hits[0].chunk.heading.endswith("退款到账时间")
    hybrid = kbs.search(["m"], "退款到账时间", k=2)
    assert hybrid[0].chunk.heading.endswith("退款到账时间")
    store.close()
