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
