"""Knowledge-base fixtures: a fast deterministic embedder and the stores (one suite runs on each)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from glmkit.kb.service import KnowledgeBases
from glmkit.kb.store import Store
from kb_fakes import HashEmbedder


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    from pg import postgres

    with postgres() as uri:
        yield uri


_n = itertools.count()


@pytest.fixture(params=["sqlite", "sqlite-encrypted", "pgvector"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    from glmkit.kb.stores import open_store

    if request.param == "sqlite":
        s = open_store(None, tmp_path)
    elif request.param == "sqlite-encrypted":  # the same suite through SQLCipher (docs/safety.md)
        from glmkit.storage.crypto import StoreKey

        s = open_store(None, tmp_path, StoreKey.from_text("test-key-" + "0123456789abcdef" * 2))
    else:
        from pg import fresh_database

        s = open_store(fresh_database(request.getfixturevalue("pg_uri"), f"t{next(_n)}"), tmp_path)
    yield s
    s.close()


@pytest.fixture
def kbs(store: Store) -> KnowledgeBases:
    return KnowledgeBases(store, HashEmbedder)


DOCS = {
    "refund.md": "# 退款政策\n\n## 申请退款\n购买后七天内可以申请无理由退款。请在“我的订单”页面点击“申请退款”。\n\n"
    "## 退款到账时间\n退款审核通过后，款项会在3到5个工作日内原路退回。\n\n# 配送说明\n我们使用顺丰快递配送，下单后48小时内发货。\n",
    "faq.csv": "问题,答案\n如何修改收货地址？,在订单发货前，可以在“我的订单”中修改收货地址。\n发票怎么开？,在订单详情页点击“申请发票”。\n",
    "points.txt": "会员积分说明。每消费一元获得一个积分。积分可以抵扣现金，一百积分抵扣一元。\n\n积分有效期为一年，过期自动清零。\n",
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    for name, text in DOCS.items():
        (d / name).write_text(text, "utf-8")
    return d
