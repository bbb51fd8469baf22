"""The HTTP reranker (``kb_reranker = rerank:URL#model``) against a real server speaking the rerank protocols
of vLLM / llama.cpp / Jina (``{"results": [{"index", "relevance_score"}]}``) and TEI (``[{"index", "score"}]``).

The fake cross-encoder scores a passage by how many of the query's characters it contains, plus a bonus
for one marked passage, so its order differs from fused BM25 + vectors and the tests can see who decided.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request

from glmkit.errors import BackendError, InvalidRequestError
from glmkit.kb.rerank import HttpReranker, _scores, load_reranker
from glmkit.kb.service import KnowledgeBases
from glmkit.kb.stores import open_store
from kb_fakes import HashEmbedder
from peers import free_port
from servers import serve

BONUS = "顺丰"  # the fake cross-encoder's favourite: a chunk fusion ranks low for a refund query


class FakeCrossEncoder:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.mode = "jina"  # jina | tei | short | null | text
        self.app = FastAPI()

        @self.app.post("/v1/rerank")
        @self.app.post("/rerank")
        async def rerank(request: Request) -> Any:
            body = await request.json()
            self.bodies.append(body)
            docs = body["documents"] if self.mode != "tei" else body["texts"]
            scores = [sum(c in d for c in set(body["query"])) + (100 if BONUS in d else 0) for d in docs]
            order = sorted(range(len(docs)), key=lambda i: -scores[i])  # best first, as the servers answer
            if self.mode == "tei":
                return [{"index": i, "score": float(scores[i])} for i in order]
            if self.mode == "short":
                order = order[:-1]
            if self.mode == "text":
                from fastapi.responses import PlainTextResponse

                return PlainTextResponse("overloaded")
            return {
                "model": body["model"],
                "results": [
                    {"index": i, "relevance_score": None if self.mode == "null" else scores[i] / 10}
                    for i in order
                ],
            }


@pytest.fixture
def cross() -> Iterator[tuple[str, FakeCrossEncoder]]:
    fake = FakeCrossEncoder()
    with serve(fake.app) as url:
        yield url, fake


@pytest.fixture
def shop(tmp_path: Path, docs: Path) -> Iterator[Path]:
    store = open_store(None, tmp_path)
    kbs = KnowledgeBases(store, HashEmbedder)
    kbs.create("shop")
    kbs.add("shop", [docs])
    store.close()
    yield tmp_path


def open_kbs(home: Path, reranker: str) -> KnowledgeBases:
    return KnowledgeBases(open_store(None, home), HashEmbedder, lambda: load_reranker(reranker))


def test_the_cross_encoder_decides_the_order_and_can_be_switched_off(
    cross: tuple[str, FakeCrossEncoder], shop: Path
) -> None:
    url, fake = cross
    kbs = open_kbs(shop, f"rerank:{url}#bge-reranker-v2-m3")
    plain = kbs.search(["shop"], "退款多久到账", k=10, rerank=False)
    assert BONUS not in plain[0].chunk.text and all(h.rerank_score is None for h in plain)
    assert not fake.bodies  # rerank off: the endpoint is not called

    hits = kbs.search(["shop"], "退款多久到账", k=3)
    assert BONUS in hits[0].chunk.text and hits[0].rerank_score == hits[0].score
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    (body,) = fake.bodies
    assert body["model"] == "bge-reranker-v2-m3" and body["query"] == "退款多久到账"
    assert len(body["documents"]) == len(plain) and body["documents"] == body["texts"]  # every candidate
    assert body["top_n"] == len(plain)
    # the candidates scored are the fused ones, each with its heading for context
    assert any(d.startswith("退款政策") for d in body["documents"])


def test_tei_answers_and_urls(cross: tuple[str, FakeCrossEncoder], shop: Path) -> None:
    url, fake = cross
    fake.mode = "tei"
    hits = open_kbs(shop, f"rerank:{url}/rerank#bge").search(["shop"], "退款", k=2)
    assert BONUS in hits[0].chunk.text
    assert HttpReranker("http://h:1/", "m").url == "http://h:1/v1/rerank"
    assert HttpReranker("http://h:1/v2/rerank/", "m").url == "http://h:1/v2/rerank"
    with pytest.raises(BackendError, match="score nan"):
        _scores([{"index": 0, "score": float("nan")}], 1, "u")


@pytest.mark.parametrize(
    ("mode", "says"),
    [("short", "scored"), ("null", "score None"), ("text", "not JSON")],
)
def test_a_bad_answer_is_a_502_naming_the_endpoint(
    cross: tuple[str, FakeCrossEncoder], shop: Path, mode: str, says: str
) -> None:
    url, fake = cross
    fake.mode = mode
    with pytest.raises(BackendError, match=says) as e:
        open_kbs(shop, f"rerank:{url}#m").search(["shop"], "退款", k=2)
    assert e.value.status == 502 and f"{url}/v1/rerank" in str(e.value)


def test_unreachable_or_misnamed_rerankers_say_so(shop: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendError, match=r"unreachable.*--no-rerank") as e:
        open_kbs(shop, f"rerank:{dead}#m").search(["shop"], "退款", k=2)
    assert e.value.status == 502
    assert open_kbs(shop, f"rerank:{dead}#m").search(["shop"], "退款", k=2, rerank=False)  # still searchable
    for bad in ("rerank:#m", f"rerank:{dead}", "rerank:ftp://x#m", "bge-reranker"):
        with pytest.raises(InvalidRequestError) as err:
            load_reranker(bad)
        assert err.value.param == "kb_reranker"
