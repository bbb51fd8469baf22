"""Files a user adds by mistake: each fails alone with a message saying what is wrong, on both stores,
and the knowledge base keeps exactly what it had."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import pytest

from glmkit.kb.loaders import LoadError, load
from glmkit.kb.service import KnowledgeBases
from kb_fakes import pdf_bytes


def _png() -> bytes:
    """A real 1×1 PNG: what a photo renamed to .txt starts like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def bad_files(tmp: Path) -> dict[str, str]:
    """Name → what the error must say."""
    (tmp / "photo.txt").write_bytes(_png() * 50)
    (tmp / "program.txt").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(range(1, 256)) * 40)  # no NUL up front
    (tmp / "empty.txt").write_bytes(b"")
    with (tmp / "one-line.txt").open("wb") as f:  # 50 MB without a line break
        block = ("数据" * 500 + "abc,").encode() * 1000
        for _ in range(-(-50_000_000 // len(block))):
            f.write(block)
    (tmp / "scan.pdf").write_bytes(pdf_bytes(None))
    (tmp / "empty.txt.gz").write_bytes(gzip.compress(b""))
    (tmp / "broken.txt.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    return {
        "photo.txt": "binary",
        "program.txt": "binary",
        "empty.txt": "empty",
        "one-line.txt": "line of .* characters .* is not prose",
        "scan.pdf": "no text layer: run OCR first",
        "empty.txt.gz": "empty",
        "broken.txt.gz": "not a readable gzip file",
    }


def test_each_bad_file_gets_a_clear_error(tmp_path: Path) -> None:
    for name, expect in bad_files(tmp_path).items():
        with pytest.raises(LoadError, match=expect) as e:
            load(tmp_path / name)
        assert name in e.value.message


def test_bad_files_leave_the_knowledge_base_unchanged(
    kbs: KnowledgeBases, docs: Path, tmp_path: Path
) -> None:
    kbs.create("shop")
    kbs.add("shop", [docs])
    before = {d.source: (d.id, d.n_chunks) for d in kbs.store.list_documents("shop")}
    n_before = kbs.store.get_kb("shop").n_chunks
    bad = tmp_path / "bad"
    bad.mkdir()
    expect = bad_files(bad)
    r = kbs.add("shop", [bad / name for name in expect])
    for f in r.files:
        name = Path(f.source).name
        assert f.status == "failed" and f.code == "unreadable_document", f
        assert name in f.error
    assert {d.source: (d.id, d.n_chunks) for d in kbs.store.list_documents("shop")} == before
    assert kbs.store.get_kb("shop").n_chunks == n_before
    assert kbs.search(["shop"], "积分", k=3)  # still searchable
