"""Training throughput and memory on the embedded model: LoRA vs P-Tuning v2 vs full fine-tuning, and
one process against several (``--processes``).

    .venv/bin/python bench/train.py [--steps 6] [--seq 128] [--threads 2] [--methods lora,ptuning,full]
    .venv/bin/python bench/train.py --processes 1,2 [--methods lora] [--global-batch 2] [--steps 6]

``--processes 1,2`` trains the first method under torchrun (gloo on CPU) with 1 and then 2 processes, the
same global batch (``--global-batch``, split over the processes) and the cores split between them
(``--threads`` / processes torch threads each): the same computation, so the tokens/s compare directly.
It reports the run's tokens/s (every rank's tokens over the slowest rank's training time) and each
process's peak RSS, and writes ``bench/results/train_processes.json``.

The embedded GGUF (Qwen2.5-Coder-0.5B-Instruct Q4_K_M) is dequantised to fp32 once, exactly as
``glmkit train`` does, and saved as a Hugging Face checkpoint under ``$GLMKIT_HOME/cache``; each method
then trains in its own process from that checkpoint. Memory: RSS once the model is loaded, and the peak RSS
while training (sampled every 20 ms: weights, gradients, AdamW moments, activations). Tokens/s counts the tokens (padding excluded) forwarded and
back-propagated per second of the training loop, model loading excluded; nothing is checkpointed.
Data: short Chinese and English conversations, ChatGLM3 format, batch 1, sequences cut to ``--seq``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table, write_result

CONVERSATIONS = [
    [
        ("user", "你好，请介绍一下你自己。"),
        ("assistant", "你好！我是一个人工智能助手，可以回答问题、写作和翻译。"),
    ],
    [("user", "北京今天天气怎么样？"), ("assistant", "北京今天晴，气温二十五度，适合出门散步。")],
    [
        ("user", "用一句话解释什么是机器学习。"),
        ("assistant", "机器学习是让计算机从数据中学习规律，并用这些规律做预测的方法。"),
    ],
    [
        ("user", "How do I reverse a list in Python?"),
        ("assistant", "Use my_list.reverse() in place, or my_list[::-1] for a reversed copy."),
    ],
    [
        ("user", "退款多久能到账？"),
        ("assistant", "退款审核通过后，一般三到五个工作日原路退回到您的支付账户。"),
    ],
    [("user", "写一句关于秋天的诗。"), ("assistant", "秋风送爽桂花香，明月高悬照故乡。")],
    [("user", "1+1 等于几？"), ("assistant", "1+1 等于 2。")],
    [
        ("user", "推荐一本入门的编程书。"),
        ("assistant", "可以从《Python编程：从入门到实践》开始，例子多，讲解清楚。"),
    ],
]


def dequantised_checkpoint() -> Path:
    """The embedded model as an fp32 Hugging Face checkpoint (made once, then reused)."""
    from glmkit.settings import Settings
    from glmkit.train.export import save_merged
    from glmkit.train.model import load_base

    out = Settings().home / "cache" / "train-bench" / "qwen2.5-coder-0.5b-f32"
    if (out / "config.json").is_file():
        return out
    t = time.perf_counter()
    base = load_base("default")
    print(f"dequantised the embedded GGUF in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".partial-"))
    save_merged(base, base.model, tmp)
    tmp.rename(out)
    return out


class PeakRss:
    """Peak resident memory of this process while the block runs, sampled every 20 ms (psutil)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def one(method: str, model: Path, steps: int, seq: int, threads: int, batch: int = 1) -> dict[str, Any]:
    """Train one method in this process and return its numbers."""
    import torch

    from glmkit.train.config import parse_config
    from glmkit.train.loop import run
    from glmkit.train.model import load_base

    torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="glmkit-train-bench-"))
    data = work / "data.jsonl"
    data.write_text(
        "".join(
            json.dumps({"conversations": [{"role": r, "content": c} for r, c in conv]}, ensure_ascii=False)
            + "\n"
            for conv in CONVERSATIONS
        ),
        encoding="utf-8",
    )
    raw: dict[str, Any] = {
        "model": str(model),
        "method": method,
        "data": str(data),
        "output_dir": str(work / "run"),
        "max_steps": steps,
        "batch_size": batch,
        "max_seq_len": seq,
        "seed": 1,
    }
    if method == "lora":
        raw["lora"] = {"r": 8, "alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    if method == "ptuning":
        raw["ptuning"] = {"num_virtual_tokens": 16}
    base = load_base(str(model))
    with PeakRss() as mem:
        result = run(parse_config(raw), base=base, save=False, progress=None).as_dict()
    result.update(
        rss_after_load_mb=round(mem.start / 2**20, 1),
        train_peak_rss_mb=round(mem.peak / 2**20, 1),
        process_peak_rss_mb=result.pop("peak_rss_mb"),  # ru_maxrss: loading included
    )
    return result


def scaling(args: argparse.Namespace, model: Path) -> None:
    """The first method on 1, 2, … processes under torchrun: the same global batch, the cores shared."""
    method = args.methods.split(",")[0]
    counts = [int(x) for x in args.processes.split(",")]
    rows, results = [], {}
    for n in counts:
        if args.global_batch % n or args.threads % n:
            raise SystemExit(
                f"--global-batch {args.global_batch} and --threads {args.threads} must divide by {n}"
            )
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(n),
            __file__,
            "--one",
            method,
            "--model",
            str(model),
            "--steps",
            str(args.steps),
            "--seq",
            str(args.seq),
            "--threads",
            str(args.threads // n),
            "--batch",
            str(args.global_batch // n),
        ]
        t = time.perf_counter()
        env = {**os.environ, "GLMKIT_LOG": "error", "OMP_NUM_THREADS": str(args.threads // n)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            raise SystemExit(f"{n} processes failed")
        ranks = sorted(
            (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")),
            key=lambda r: r["rank"],
        )
        assert len(ranks) == n, proc.stdout
        seconds = max(r["seconds"] for r in ranks)
        tokens = sum(r["tokens"] for r in ranks)
        summary = {
            "processes": n,
            "threads_per_process": args.threads // n,
            "batch_per_process": args.global_batch // n,
            "tokens": tokens,
            "train_seconds": seconds,
            "tokens_per_s": round(tokens / seconds, 1),
            "peak_rss_mb_per_process": [r["train_peak_rss_mb"] for r in ranks],
            "rss_after_load_mb_per_process": [r["rss_after_load_mb"] for r in ranks],
            "process_seconds": round(time.perf_counter() - t, 1),
            "ranks": ranks,
        }
        results[str(n)] = summary
        base = results[str(counts[0])]["tokens_per_s"]
        rows.append(
            [
                str(n),
                f"{args.threads // n}",
                f"{args.global_batch // n}",
                f"{summary['tokens_per_s']:.1f}",
                f"{summary['tokens_per_s'] / base:.2f}×",
                " / ".join(f"{x:,.0f}" for x in summary["peak_rss_mb_per_process"]),
                f"{seconds:.1f}",
                f"{summary['process_seconds']:.0f}",
            ]
        )
        print(f"{n} process(es): {summary['tokens_per_s']:.1f} tok/s", file=sys.stderr)
    headers = [
        "processes",
        "threads each",
        "batch each",
        "tokens/s (run)",
        "vs first",
        "peak RSS MB per process",
        "train s",
        "wall s (load incl.)",
    ]
    print(f"{method}, global batch {args.global_batch}, {args.steps} steps, torchrun + gloo")
    print(table(headers, rows))
    path = write_result(
        "train_processes",
        {
            "machine": machine(),
            "model": "qwen2.5-coder-0.5b (embedded GGUF dequantised to fp32)",
            "method": method,
            "steps": args.steps,
            "max_seq_len": args.seq,
            "global_batch": args.global_batch,
            "threads": args.threads,
            "results": results,
        },
    )
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default="lora,ptuning,full")
    ap.add_argument("--processes", help="compare process counts (e.g. 1,2) on the first method")
    ap.add_argument("--global-batch", type=int, default=2, help="with --processes: examples per step")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.model, args.steps, args.seq, args.threads, args.batch)))
        return

    model = dequantised_checkpoint()
    if args.processes:
        scaling(args, model)
        return
    rows, results = [], {}
    for method in args.methods.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--one",
            method,
            "--model",
            str(model),
            "--steps",
            str(args.steps),
            "--seq",
            str(args.seq),
            "--threads",
            str(args.threads),
        ]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "GLMKIT_LOG": "error"})
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"{method} failed")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["process_seconds"] = round(time.perf_counter() - t, 1)
        results[method] = r
        rows.append(
            [
                method,
                f"{r['trainable_params']:,}",
                f"{r['tokens_per_s']:.1f}",
                f"{r['rss_after_load_mb']:,.0f}",
                f"{r['train_peak_rss_mb']:,.0f}",
                f"{r['seconds']:.1f}",
            ]
        )
        print(
            f"{method}: {r['tokens_per_s']:.1f} tok/s, peak RSS {r['train_peak_rss_mb']:,.0f} MB",
            file=sys.stderr,
        )
    headers = ["method", "trainable params", "tokens/s", "RSS loaded MB", "peak RSS training MB", "train s"]
    print(table(headers, rows))
    path = write_result(
        "train",
        {
            "machine": machine(),
            "model": "qwen2.5-coder-0.5b (embedded GGUF dequantised to fp32)",
            "steps": args.steps,
            "max_seq_len": args.seq,
            "batch_size": 1,
            "threads": args.threads,
            "results": results,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
