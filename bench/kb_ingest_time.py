"""Time one ingestion of the Debian FAQ plain text (259 chunks) into a fresh SQLite knowledge base, with
whatever glmkit is first on PYTHONPATH — so two checkouts can be compared in one run:

    PYTHONPATH=/path/to/main/src .venv/bin/python bench/kb_ingest_time.py main
    PYTHONPATH=src .venv/bin/python bench/kb_ingest_time.py branch

Prints wall and CPU seconds of ``KnowledgeBases.add`` (the embedder is loaded and warmed first). Timings
matter: run it on quiet cores (create /tmp/QUIET while it runs)."""

from __future__ import annotations

import gzip
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import glmkit
from glmkit.kb.embed import load_embedder
from glmkit.kb.service import KnowledgeBases
from glmkit.kb.stores import open_store
from kb import faq_dir


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "glmkit"
    work = Path(tempfile.mkdtemp(prefix="glmkit-ingest-"))
    p = work / "debian-faq.zh-cn.txt"
    p.write_text(gzip.decompress((faq_dir().parent / "debian-faq.zh-cn.txt.gz").read_bytes()).decode(), "utf-8")
    emb = load_embedder()
    emb.embed(["预热", "warm up"])
    store = open_store(f"sqlite:///{work / 'kb.sqlite3'}", work)
    kbs = KnowledgeBases(store, lambda: emb)
    kbs.create("t")
    load = Path("/proc/loadavg").read_text().split()[0]
    c0 = time.process_time()
    r = kbs.add("t", [p])
    cpu = time.process_time() - c0
    print(
        f"{label}: {r.seconds:.1f} s wall, {cpu:.1f} s CPU, {r.chunks} chunks, load before {load}"
        f" ({os.path.dirname(glmkit.__file__)})"
    )
    store.close()


if __name__ == "__main__":
    main()
