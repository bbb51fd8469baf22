"""Knowledge-base stores: ``sqlite`` (embedded default) and ``pgvector`` (PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from glmkit.errors import InvalidRequestError
from glmkit.kb.store import Store
from glmkit.storage.crypto import StoreKey


def open_store(url: str | None, home: Path, key: StoreKey | None = None) -> Store:
    """``None``/``sqlite`` → ``$GLMKIT_HOME/kb/kb.sqlite3``; ``sqlite:///path``; ``postgresql://…``.
    ``key`` encrypts the SQLite stores; PostgreSQL keeps its own at-rest story (docs/safety.md)."""
    if not url or url == "sqlite":
        from glmkit.kb.stores.sqlite import SQLiteStore

        return SQLiteStore(home / "kb" / "kb.sqlite3", key)
    if url.startswith("sqlite:///"):
        from glmkit.kb.stores.sqlite import SQLiteStore

        return SQLiteStore(Path(url[len("sqlite:///") :]), key)
    if url.startswith(("postgresql://", "postgres://")):
        from glmkit.kb.stores.pgvector import PgVectorStore

        return PgVectorStore(url)
    raise InvalidRequestError(
        f"unknown knowledge-base store {url!r}: use sqlite, sqlite:///PATH or postgresql://…",
        param="kb_store",
    )
