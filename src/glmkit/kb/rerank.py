"""Second-stage scoring of retrieved chunks. The protocol is what retrieval calls; implementations live
here and are chosen by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Reranker(Protocol):
    name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance of each passage to the query; higher is better."""
        ...


def load_reranker(name: str) -> Reranker | None:
    """``none`` (the default) retrieves without reranking. No reranker ships yet: PyPI has no Chinese
    cross-encoder with its weights, and the alternatives measured on the Debian FAQ did no better than
    hybrid retrieval (docs/kb.md). Plug one in by passing a ``Reranker`` to ``KnowledgeBases``."""
    if name in ("none", "off", ""):
        return None
    from glmkit.errors import InvalidRequestError

    raise InvalidRequestError(
        f"unknown reranker {name!r}: this install has none (use none)", param="kb_reranker"
    )
