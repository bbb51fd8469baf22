"""Ingestion, management and retrieval, run against every store."""

from __future__ import annotations

from pathlib import Path

import pytest

from glmkit.errors import InvalidRequestError
from glmkit.kb.service import KnowledgeBases
from glmkit.kb.store import Filters, KBExistsError, KBNotFoundError


def test_ingest_is_idempotent_and_replaces_changed_files(kbs: KnowledgeBases, docs: Path) -> None:
    kbs.create("shop")
    r = kbs.add("shop", [docs])
    assert [f.status for f in r.files] == ["added"] * 3 and r.chunks >= 5
    assert kbs.store.get_kb("shop").n_documents == 3
    again = kbs.add("shop", [docs])
    assert [f.status for f in again.files] == ["unchanged"] * 3
    (docs / "points.txt").write_text("积分规则已取消。", "utf-8")
    third = kbs.add("shop", [docs])
    assert {f.source.rsplit("/", 1)[-1]: f.status for f in third.files}["points.txt"] == "replaced"
    hits = kbs.search(["shop"], "积分", k=10)
    assert any("已取消" in h.chunk.text for h in hits)
    assert not any("一百积分" in h.chunk.text for h in hits)  # old chunks are gone


@pytest.mark.parametrize("mode", ["bm25", "vector", "hybrid"])
def test_each_mode_finds_the_right_chunk(kbs: KnowledgeBases, docs: Path, mode: str) -> None:
    kbs.create("shop")
    kbs.add("shop", [docs])
    cases = {
        "退款多久到账": "3到5个工作日",
        "发票怎么开": "申请发票",
        "快递用哪家": "顺丰",
        "积分抵扣现金": "一百积分",
    }
    for q, expect in cases.items():
        hits = kbs.search(["shop"], q, k=3, mode=mode)  # type: ignore[arg-type]
        top = hits[0].chunk
        assert expect in top.text + top.answer, (mode, q, [h.chunk.text for h in hits])
        assert top.source.endswith((".md", ".csv", ".txt")) and top.location


def test_faq_rows_keep_question_and_answer_and_headings_are_carried(kbs: KnowledgeBases, docs: Path) -> None:
    kbs.create("shop")
    kbs.add("shop", [docs])
    (faq,) = [h for h in kbs.search(["shop"], "发票怎么开", k=5) if h.chunk.kind == "faq"][:1]
    assert (
        faq.chunk.text == "发票怎么开？" and "申请发票" in faq.chunk.answer and faq.chunk.location == "行 3"
    )
    hit = kbs.search(["shop"], "退款到账时间", k=1)[0]
    assert hit.chunk.heading == "退款政策 > 退款到账时间"


def test_bad_files_fail_alone_and_stored_data_survives(
    kbs: KnowledgeBases, docs: Path, tmp_path: Path
) -> None:
    kbs.create("shop")
    kbs.add("shop", [docs])
    before = kbs.store.get_kb("shop").n_chunks
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (bad / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (bad / "good.txt").write_text("新的营业时间是早上九点到晚上十点。", "utf-8")
    r = kbs.add(
        "shop",
        [bad / "empty.txt", bad / "binary.txt", bad / "broken.pdf", bad / "good.txt", bad / "nope.txt"],
    )
    status = {Path(f.source).name: (f.status, f.error) for f in r.files}
    assert status["good.txt"][0] == "added"
    for name in ("empty.txt", "binary.txt", "broken.pdf", "nope.txt"):
        assert status[name][0] == "failed" and name in status[name][1], status[name]
    assert kbs.store.get_kb("shop").n_chunks == before + 1


def test_management_and_filters(kbs: KnowledgeBases, docs: Path) -> None:
    kbs.create("shop", "商城客服")
    with pytest.raises(KBExistsError):
        kbs.create("shop")
    with pytest.raises(InvalidRequestError, match="name"):
        kbs.create("bad name/..")
    kbs.add("shop", [docs / "refund.md"], tags=["policy"])
    kbs.add("shop", [docs / "faq.csv", docs / "points.txt"])
    kbs.create("other")
    kbs.add("other", [docs / "points.txt"])
    assert [k.name for k in kbs.list_kbs()] == ["other", "shop"]
    hits = kbs.search(["shop"], "退款", k=10, filters=Filters(tags=("policy",)))
    assert hits and all(h.chunk.source.endswith("refund.md") for h in hits)
    hits = kbs.search(["shop"], "积分", k=10, filters=Filters(sources=("*points.txt",)))
    assert hits and all(h.chunk.source.endswith("points.txt") for h in hits)
    both = kbs.search(["shop", "other"], "积分有效期", k=10)
    assert {h.chunk.kb for h in both} == {"shop", "other"}
    removed = kbs.store.remove_document("shop", str(docs / "refund.md"))
    assert removed.source.endswith("refund.md")
    assert not any(h.chunk.source.endswith("refund.md") for h in kbs.search(["shop"], "退款", k=10))
    kbs.store.delete_kb("other")
    with pytest.raises(KBNotFoundError):
        kbs.search(["other"], "积分")


def test_owner_only_sees_its_knowledge_base(kbs: KnowledgeBases, docs: Path) -> None:
    kbs.create("private", owner="key-a")
    kbs.add("private", [docs / "points.txt"])
    assert kbs.search(["private"], "积分", caller="key-a")
    with pytest.raises(KBNotFoundError):
        kbs.search(["private"], "积分", caller="key-b")
    assert [k.name for k in kbs.list_kbs("key-b")] == []


def _reference_bm25(docs: dict[str, list[str]], query: list[str]) -> dict[str, float]:
    """Okapi BM25 (k1 1.2, b 0.75, idf log(1 + (N - df + 0.5) / (df + 0.5))) written out by hand."""
    import math

    n, avgdl = len(docs), sum(len(d) for d in docs.values()) / len(docs)
    out: dict[str, float] = {}
    for cid, words in docs.items():
        s = 0.0
        for t in set(query):
            tf, df = words.count(t), sum(t in d for d in docs.values())
            if tf:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                s += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(words) / avgdl))
        if s:
            out[cid] = s
    return out


def test_pgvector_bm25_matches_okapi_by_hand_and_survives_a_refill(pg_uri: str) -> None:
    """The postings table gives Okapi BM25 exactly; replaced documents leave no postings behind; and a
    database written before the table existed (postings emptied here) is indexed again on open."""
    import numpy as np

    from glmkit.kb.store import DocRecord, NewChunk
    from glmkit.kb.stores.pgvector import PgVectorStore
    from pg import fresh_database

    url = fresh_database(pg_uri, "bm25ref")
    store = PgVectorStore(url)
    texts = {
        "a": "退款 申请 退款 七天 无理由",
        "b": "快递 顺丰 发货 退款",
        "c": "发票 申请 电子 发票 邮箱",
        "d": "积分 抵扣 现金 一百 积分 积分",
    }
    vec = np.ones(384, np.float32) / np.sqrt(384)

    def put(name: str, toks: str) -> None:
        store.replace_document(
            DocRecord("", "t", name, "0", 0, 0.0, 0), [NewChunk(toks, "", "", "text", "", toks, vec)]
        )

    try:
        store.create_kb("t", "", "hash", 384, None)
        for name, toks in texts.items():
            put(name, toks)
        names = {f"{store.find_document('t', k).id}-0": k for k in texts}  # type: ignore[union-attr]
        query = ["退款", "申请", "积分", "没有的词"]
        want = _reference_bm25({k: v.split() for k, v in texts.items()}, query)
        got = {names[c]: s for c, s in store.bm25(["t"], query, 10, Filters())}
        assert got.keys() == want.keys() == {"a", "b", "c", "d"}
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-9)
        put("d", "积分 取消")
        texts["d"] = "积分 取消"
        assert store._q("SELECT count(*) FROM glmkit_postings")[0][0] == 4 + 4 + 4 + 2
        before = store.bm25(["t"], query, 10, Filters())
        store._q("DELETE FROM glmkit_postings")
    finally:
        store.close()
    again = PgVectorStore(url)
    try:
        assert again._q("SELECT count(*) FROM glmkit_postings")[0][0] == 14
        after = again.bm25(["t"], query, 10, Filters())
        assert [c for c, _ in after] == [c for c, _ in before]
        assert [s for _, s in after] == pytest.approx([s for _, s in before], rel=1e-9)
    finally:
        again.close()
