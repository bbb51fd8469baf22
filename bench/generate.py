"""Controlled generation: constraint satisfaction before and after checking-and-retry, and tokens/s.

Prompts: poems in the four classical forms on 20 topics (with one required keyword each) and ad copy with
keywords and a length bound, 50+ requests in all, on the embedded model. "First draft" is the rate at
which attempt 1 already satisfies every checkable constraint; "after retry" allows up to --retries more.

    .venv/bin/python bench/generate.py     # table on stdout, JSON in bench/results/generate.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import machine, table, write_result  # noqa: E402
from glmkit.apps.generate import FORMS, Generator  # noqa: E402
from glmkit.runtime.loaders import load_chat_model  # noqa: E402
from glmkit.settings import Settings  # noqa: E402

TOPICS = [
    ("秋天", "秋"),
    ("明月", "月"),
    ("春雨", "雨"),
    ("长江", "江"),
    ("故乡", "乡"),
    ("梅花", "梅"),
    ("边塞", "风"),
    ("登高", "山"),
    ("送别", "别"),
    ("夜泊", "夜"),
    ("田园", "田"),
    ("雪景", "雪"),
    ("柳树", "柳"),
    ("黄河", "河"),
    ("竹林", "竹"),
    ("夕阳", "阳"),
    ("渔舟", "舟"),
    ("落花", "花"),
    ("孤雁", "雁"),
    ("清晨", "晨"),
]
ADS = [
    ("新款保温杯", ["保温"]),
    ("有机绿茶", ["清香"]),
    ("儿童绘本", ["故事"]),
    ("跑步鞋", ["轻便"]),
    ("智能台灯", ["护眼"]),
    ("蓝牙耳机", ["降噪"]),
    ("手工月饼", ["中秋"]),
    ("露营帐篷", ["防雨"]),
    ("咖啡豆", ["香醇"]),
    ("羊毛围巾", ["温暖"]),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    model = load_chat_model(settings=Settings(n_threads=args.threads, n_ctx=2048))
    gen = Generator(model)
    jobs: list[tuple[str, dict[str, Any]]] = []
    forms = list(FORMS)
    for i, (topic, kw) in enumerate(TOPICS):
        for form in (forms[i % 4], forms[(i + 1) % 4]):
            jobs.append(("poem", {"topic": topic, "form": form, "keywords": [kw]}))
    for product, kws in ADS:
        jobs.append(("ad", {"topic": product, "keywords": kws, "max_chars": 80}))
    rows: dict[str, dict[str, Any]] = {}
    tokens = 0
    t0 = time.perf_counter()
    for kind, kw in jobs:
        g = gen.generate(
            kind,
            kw["topic"],
            form=kw.get("form"),
            keywords=kw["keywords"],
            max_chars=kw.get("max_chars"),
            retries=args.retries,
            seed=1,
        )
        key = kw.get("form") or "广告文案"
        r = rows.setdefault(key, {"n": 0, "first": 0, "after": 0, "attempts": 0})
        r["n"] += 1
        r["first"] += not g.history[0]["problems"]
        r["after"] += g.ok
        r["attempts"] += g.attempts
        tokens += sum(len(model.engine.tokenizer.encode(str(h["text"]))) for h in g.history)  # type: ignore[attr-defined]
    wall = time.perf_counter() - t0
    model.close()
    table_rows = [
        [
            k,
            v["n"],
            round(v["first"] / v["n"], 3),
            round(v["after"] / v["n"], 3),
            round(v["attempts"] / v["n"], 2),
        ]
        for k, v in rows.items()
    ]
    n = sum(v["n"] for v in rows.values())
    first = sum(v["first"] for v in rows.values()) / n
    after = sum(v["after"] for v in rows.values()) / n
    table_rows.append(
        ["all", n, round(first, 3), round(after, 3), round(sum(v["attempts"] for v in rows.values()) / n, 2)]
    )
    print(
        table(
            ["task", "requests", "first draft ok", f"after ≤{args.retries} retries", "attempts/request"],
            table_rows,
        )
    )
    print(
        f"\n{tokens} generated tokens in {wall:.0f} s: {tokens / wall:.1f} tok/s (including prompts' prefill time)"
    )
    out = {
        "machine": machine(),
        "retries": args.retries,
        "rows": rows,
        "first_draft_ok": first,
        "after_retry_ok": after,
        "tokens": tokens,
        "seconds": round(wall, 1),
    }
    print(f"written: {write_result('generate', out)}")


if __name__ == "__main__":
    main()
