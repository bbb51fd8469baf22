"""The server over an encrypted home: uploads, search and the audit log work over HTTP, and what reaches
the disk holds no piece of the uploaded sentence."""

from __future__ import annotations

from pathlib import Path

import httpx
from test_encryption import KEY, SENTENCE, leaks


def test_uploads_and_search_over_http_leave_only_ciphertext_on_disk(fake_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with fake_server(encryption_key=KEY) as (url, _, _keys):
        assert httpx.post(f"{url}/v1/kb", json={"name": "shop"}).status_code == 201
        parts = [("files", ("shipping.md", f"# 配送\n\n{SENTENCE}\n".encode()))]
        r = httpx.post(f"{url}/v1/kb/shop/documents", files=parts, timeout=120)
        assert r.status_code == 200 and r.json()["files"][0]["status"] == "added", r.text
        hits = httpx.post(f"{url}/v1/kb/shop/search", json={"query": "快递 订单号", "k": 1}).json()["data"]
        assert SENTENCE in hits[0]["text"]
        assert (tmp_path / "encryption.json").exists()
        assert leaks(tmp_path) == {}  # while the server runs: databases and their WAL files
    assert leaks(tmp_path) == {}
    assert {p.name for p in tmp_path.rglob("*.sqlite3")} >= {"kb.sqlite3", "audit.sqlite3"}
