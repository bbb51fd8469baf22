"""What encryption at rest costs: the SQLite knowledge-base store plain vs through SQLCipher
(``GLMKIT_ENCRYPTION_KEY``), on the same synthetic Chinese chunks with 384-dim vectors.

Per form: ingestion (chunks/s, 50-chunk documents, one transaction each), BM25 query p50/p95 over a warm
page cache, a cold open plus the first vector query (the float32 matrix is read from the database once,
then cached), the file size; then ``glmkit home encrypt`` of the plain home (seconds, MB/s).

    .venv/bin/python bench/encryption.py                 # 20,000 chunks; JSON in bench/results/encryption.json
    .venv/bin/python bench/encryption.py --chunks 5000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, table, write_result  # noqa: E402
from glmkit.kb.store import DocRecord, Filters, NewChunk  # noqa: E402
from glmkit.kb.stores.sqlite import SQLiteStore  # noqa: E402
from glmkit.settings import Settings  # noqa: E402
from glmkit.storage.crypto import StoreKey  # noqa: E402
from glmkit.storage.home import encrypt_home  # noqa: E402

KEY = "bench-" + "0123456789abcdef" * 4
WORDS = [
    "退款",
    "快递",
    "订单",
    "发票",
    "积分",
    "会员",
    "地址",
    "客服",
    "物流",
    "售后",
    "优惠",
    "支付",
    "账户",
    "密码",
    "配送",
    "包装",
    "质量",
    "换货",
    "保修",
    "活动",
]
DIM = 384
PER_DOC = 50


def chunks(n: int, rng: random.Random) -> list[list[NewChunk]]:
    docs = []
    for d in range(0, n, PER_DOC):
        batch = []
        for _ in range(min(PER_DOC, n - d)):
            words = rng.choices(WORDS, k=40)
            v = np.asarray([rng.gauss(0, 1) for _ in range(DIM)], dtype=np.float32)
            batch.append(
                NewChunk("".join(words), "bench", "", "text", "", " ".join(words), v / np.linalg.norm(v))
            )
        docs.append(batch)
    return docs


def run(
    folder: Path, key: StoreKey | None, docs: list[list[NewChunk]], queries: list[list[str]]
) -> dict[str, Any]:
    path = folder / "kb" / "kb.sqlite3"
    store = SQLiteStore(path, key)
    store.create_kb("bench", "", "bench", DIM, None)
    n = sum(len(d) for d in docs)
    t = time.perf_counter()
    for i, batch in enumerate(docs):
        store.replace_document(DocRecord("", "bench", f"doc-{i}", "0", 0, time.time(), 0), batch)
    ingest = time.perf_counter() - t
    times = []
    for q in queries:
        t = time.perf_counter()
        store.bm25(["bench"], q, 10, Filters())
        times.append(time.perf_counter() - t)
    store.close()
    t = time.perf_counter()
    store = SQLiteStore(path, key)
    store.vector(["bench"], docs[0][0].vector, 10, Filters())
    cold = time.perf_counter() - t
    store.close()
    qs = sorted(times)
    return {
        "chunks": n,
        "ingest_chunks_per_s": n / ingest,
        "bm25_p50_ms": statistics.median(qs) * 1000,
        "bm25_p95_ms": qs[int(len(qs) * 0.95)] * 1000,
        "cold_open_first_vector_query_s": cold,
        "db_mb": path.stat().st_size / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    rng = random.Random(16)
    docs = chunks(args.chunks, rng)
    queries = [rng.sample(WORDS, 3) for _ in range(args.queries)]
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="glmkit-bench-enc-") as tmp:
        for form, key in (("plain", None), ("encrypted", StoreKey.from_text(KEY))):
            rows[form] = run(Path(tmp) / form, key, docs, queries)
        plain_home = Path(tmp) / "plain"
        t = time.perf_counter()
        encrypt_home(Settings(home=plain_home, encryption_key=KEY))
        took = time.perf_counter() - t
        conversion = {"seconds": took, "mb_per_s": rows["plain"]["db_mb"] / took}
    p, e = rows["plain"], rows["encrypted"]
    keys = ["ingest_chunks_per_s", "bm25_p50_ms", "bm25_p95_ms", "cold_open_first_vector_query_s", "db_mb"]
    print(f"{args.chunks} chunks of ~40 words, {DIM}-dim vectors; {args.queries} BM25 queries")
    print(
        table(
            ["measure", "plain", "encrypted", "encrypted / plain"],
            [[k, p[k], e[k], e[k] / p[k]] for k in keys],
        )
    )
    print(
        f"glmkit home encrypt of the plain home: {conversion['seconds']:.2f} s ({conversion['mb_per_s']:.1f} MB/s)"
    )
    out = write_result(
        "encryption", {"machine": machine(), "args": vars(args), **rows, "encrypt_home": conversion}
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
