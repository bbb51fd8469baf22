#!/usr/bin/env python3
"""A small Chinese instruction set from TNEWS (../shared/data/tnews), in Alpaca format, for the pipeline demo.

Each news title becomes {"instruction": "判断新闻标题的类别…", "input": TITLE, "output": 类别} with the 15
Chinese category names of label_index2en2zh.json. train_few_all.json (1,185 titles) is the training set;
a fixed, label-stratified sample of dev_few_all.json (--test, 150 by default) is the held-out set.

    python3 bench/data/tnews_sft.py OUT_DIR [--test 150]    # writes OUT_DIR/train.alpaca.jsonl, test.alpaca.jsonl
Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "tnews"


def labels() -> dict[str, str]:
    out = {}
    for line in (DATA / "label_index2en2zh.json").read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out[str(d["label"])] = d["label_zh"]
    return out


def instruction(names: list[str]) -> str:
    return f"判断下面新闻标题的类别，只回答类别名，从这些类别中选一个：{'、'.join(names)}。"


def records(path: Path, names: dict[str, str]) -> list[dict[str, str]]:
    inst = instruction(list(names.values()))
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append({"instruction": inst, "input": d["sentence"], "output": names[str(d["label"])]})
    return out


def stratified(rows: list[dict[str, str]], n: int, seed: int = 0) -> list[dict[str, str]]:
    by: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by[r["output"]].append(r)
    rng = random.Random(seed)
    for v in by.values():
        rng.shuffle(v)
    picked: list[dict[str, str]] = []
    while len(picked) < n and any(by.values()):
        for k in sorted(by):
            if by[k] and len(picked) < n:
                picked.append(by[k].pop())
    return picked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--test", type=int, default=150)
    args = ap.parse_args()
    names = labels()
    args.out.mkdir(parents=True, exist_ok=True)
    train = records(DATA / "train_few_all.json", names)
    test = stratified(records(DATA / "dev_few_all.json", names), args.test)
    for name, rows in (("train", train), ("test", test)):
        path = args.out / f"{name}.alpaca.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{path}: {len(rows)} records")


if __name__ == "__main__":
    main()
