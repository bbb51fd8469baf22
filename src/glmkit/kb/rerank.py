"""Second-stage scoring of retrieved chunks. The protocol is what retrieval calls; implementations live
here and are chosen by name (the ``kb_reranker`` setting, ``bench/kb.py --reranker``).

- ``none`` (the default): hybrid retrieval without a second stage. No reranker ships in the wheel: PyPI has
  no Chinese cross-encoder with its weights, and the alternatives measured on the Debian FAQ did no better
  than hybrid retrieval (docs/kb.md).
- ``rerank:URL#model``: a cross-encoder served by any rerank endpoint — vLLM (``--task score``,
  ``/v1/rerank``), llama.cpp's server (``--reranking``, ``/v1/rerank``), Hugging Face TEI (``/rerank``),
  Xinference, LocalAI or Jina/Cohere-compatible clouds. A URL whose path ends in ``/rerank`` is used as it
  is; otherwise ``/v1/rerank`` is appended. The bearer key comes from ``GLMKIT_RERANKER_API_KEY``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from glmkit.errors import BackendError, InvalidRequestError


class Reranker(Protocol):
    name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance of each passage to the query; higher is better."""
        ...


class HttpReranker:
    """A rerank endpoint. The request carries the passages as ``documents`` (Jina, Cohere, vLLM, llama.cpp)
    and as ``texts`` (TEI); both answer shapes are read: ``{"results": [{"index", "relevance_score"}]}`` and
    ``[{"index", "score"}]``. Any failure is a ``BackendError`` (502) naming the endpoint: a search that
    asked for reranking never silently returns unreranked results."""

    def __init__(self, url: str, model: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        import httpx

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidRequestError(
                f"reranker URL {url!r} must be http(s)://host[:port][/path]", param="kb_reranker"
            )
        path = parts.path.rstrip("/")
        self.url = url.rstrip("/") if path.endswith("/rerank") else url.rstrip("/") + "/v1/rerank"
        self.name = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers)

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        import httpx

        if not passages:
            return []
        docs = list(passages)
        body = {"model": self.name, "query": query, "documents": docs, "texts": docs, "top_n": len(docs)}
        try:
            r = self._client.post(self.url, json=body)
        except httpx.HTTPError as e:
            raise BackendError(
                f"reranker at {self.url} is unreachable ({e}); search with rerank off "
                '(--no-rerank, "rerank": false) or set kb_reranker=none'
            ) from None
        if r.status_code >= 400:
            raise BackendError(f"reranker at {self.url} answered {r.status_code}: {r.text[:300]}")
        try:
            data = r.json()
        except ValueError:
            raise BackendError(f"reranker at {self.url} answered with something that is not JSON") from None
        return _scores(data, len(docs), self.url)

    def close(self) -> None:
        self._client.close()


def _scores(data: Any, n: int, url: str) -> list[float]:
    items = data.get("results") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise BackendError(f"reranker at {url} answered without a results list")
    scores: list[float | None] = [None] * n
    for item in items:
        if not isinstance(item, dict):
            raise BackendError(f"reranker at {url} answered a result that is not an object: {item!r:.80}")
        i, s = item.get("index"), item.get("relevance_score", item.get("score"))
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n:
            raise BackendError(f"reranker at {url} answered index {i!r} for {n} passages")
        if not isinstance(s, int | float) or isinstance(s, bool) or not math.isfinite(s):
            raise BackendError(f"reranker at {url} answered score {s!r} for passage {i}")
        scores[i] = float(s)
    missing = [i for i, s in enumerate(scores) if s is None]
    if missing:
        raise BackendError(
            f"reranker at {url} scored {n - len(missing)} of {n} passages (missing {missing[:5]})"
        )
    return [s for s in scores if s is not None]


def load_reranker(name: str) -> Reranker | None:
    """``none``/``off``/empty: no reranking. ``rerank:URL#model``: an HTTP rerank endpoint."""
    if name in ("none", "off", ""):
        return None
    if name.startswith("rerank:"):
        url, _, model = name[len("rerank:") :].partition("#")
        if not url or not model:
            raise InvalidRequestError("a remote reranker is rerank:URL#model", param="kb_reranker")
        return HttpReranker(url, model, os.environ.get("GLMKIT_RERANKER_API_KEY"))
    raise InvalidRequestError(
        f"unknown reranker {name!r}: use none, or rerank:URL#model for a rerank endpoint "
        "(vLLM, llama.cpp's server, TEI)",
        param="kb_reranker",
    )
