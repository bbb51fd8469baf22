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
    """``none`` switches reranking off; ``default`` is the best reranker this install has."""
    if name in ("none", "off", ""):
        return None
    if name == "default":
        return None  # filled in when a reranker lands (see docs/kb.md)
    from glmkit.errors import InvalidRequestError

    raise InvalidRequestError(f"unknown reranker {name!r}: use default or none", param="kb_reranker")
