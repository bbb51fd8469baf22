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
