"""Training throughput and memory on the embedded model: LoRA vs P-Tuning v2 vs full fine-tuning; one
process against several (``--processes``); and, with ``--privacy``, what differential privacy costs and
buys (held-out accuracy and canary exposure).

    .venv/bin/python bench/train.py [--steps 6] [--seq 128] [--threads 2] [--methods lora,ptuning,full]
    .venv/bin/python bench/train.py --processes 1,2 [--methods lora] [--global-batch 2] [--steps 6]
    .venv/bin/python bench/train.py --privacy [--steps 8] [--train 120] [--test 45] [--candidates 200]

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

``--privacy``: the pipeline demo's TNEWS task (``bench/data/tnews_sft.py``: classify a news title into one
of 15 categories) with LoRA (r 8 on q/k/v/o, lr 2e-3, 8 × 2 = 16 examples a step) trained on a
label-stratified ``--train`` titles plus a canary — one random 11-digit phone number planted in 5 training
conversations — three times: without DP, with ``dp: {epsilon: 8}`` and with ``dp: {epsilon: 1}`` (δ 1e-5,
per-example clipping 1.0). Accuracy on ``--test`` held-out titles: the label whose first token the model
ranks highest right after the prompt (the 15 labels' first tokens are distinct), also for the untrained
model. Exposure (Carlini et al.): the canary conversation's likelihood ranked among ``--candidates`` random
11-digit numbers in the same sentence, ``log2(candidates + 1) − log2(rank)``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
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
    """Peak memory of this process while the block runs, sampled every 20 ms (psutil): RSS, and PSS and
    USS (smaps_rollup). RSS counts the pages of the memory-mapped fp32 checkpoint that the forward pass has
    read; processes that map the same file share those pages, so PSS (shared pages split between the
    processes that map them: PSS summed over processes is what they take together) and USS (pages no other
    process maps) are what a process really adds."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.start = self._proc.memory_info().rss
        self.peak = self.peak_pss = self.peak_uss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _read(self) -> None:
        m = self._proc.memory_full_info()
        self.peak = max(self.peak, m.rss)
        self.peak_pss = max(self.peak_pss, m.pss)
        self.peak_uss = max(self.peak_uss, m.uss)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._read()

    def __enter__(self) -> PeakRss:
        self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()


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
        train_peak_pss_mb=round(mem.peak_pss / 2**20, 1),
        train_peak_uss_mb=round(mem.peak_uss / 2**20, 1),
        process_peak_rss_mb=result.pop("peak_rss_mb"),  # ru_maxrss: loading included
    )
    return result


def _one_args(method: str, model: Path, args: argparse.Namespace, *, threads: int, batch: int) -> list[str]:
    """This script's arguments for one method's run in a child process (``--one``)."""
    return [
        __file__,
        *("--one", method, "--model", str(model), "--steps", str(args.steps), "--seq", str(args.seq)),
        *("--threads", str(threads), "--batch", str(batch)),
    ]


def _launch(args: argparse.Namespace, model: Path, method: str, n: int) -> dict[str, Any]:
    """One torchrun launch of ``n`` processes; its ranks' JSON results summed up."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(n),
        *_one_args(method, model, args, threads=args.threads // n, batch=args.global_batch // n),
    ]
    load_before = os.getloadavg()[0]  # a busy machine shows here: 2 threads on 2 shared cores collapse
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
    return {
        "tokens": tokens,
        "train_seconds": seconds,
        "tokens_per_s": round(tokens / seconds, 1),
        "peak_rss_mb_per_process": [r["train_peak_rss_mb"] for r in ranks],
        "peak_pss_mb_per_process": [r["train_peak_pss_mb"] for r in ranks],
        "peak_uss_mb_per_process": [r["train_peak_uss_mb"] for r in ranks],
        "rss_after_load_mb_per_process": [r["rss_after_load_mb"] for r in ranks],
        "process_seconds": round(time.perf_counter() - t, 1),
        "load_before": load_before,
        "ranks": ranks,
    }


def scaling(args: argparse.Namespace, model: Path) -> None:
    """The first method on 1, 2, … processes under torchrun: the same global batch, the cores shared.
    ``--repeats`` rounds, the process counts interleaved within each round (so a slow spell of the
    machine falls on both), reported as the median and range of tokens/s."""
    method = args.methods.split(",")[0]
    counts = [int(x) for x in args.processes.split(",")]
    for n in counts:
        if args.global_batch % n or args.threads % n:
            raise SystemExit(
                f"--global-batch {args.global_batch} and --threads {args.threads} must divide by {n}"
            )
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    for r in range(args.repeats):
        for n in counts:
            runs[n].append(_launch(args, model, method, n))
            print(f"round {r + 1}: {n} process(es): {runs[n][-1]['tokens_per_s']:.1f} tok/s", file=sys.stderr)
    rows, results = [], {}
    for n in counts:
        rates = [x["tokens_per_s"] for x in runs[n]]
        peak = {
            kind: [max(x[f"peak_{kind}_mb_per_process"][i] for x in runs[n]) for i in range(n)]
            for kind in ("rss", "pss", "uss")
        }
        results[str(n)] = {
            "processes": n,
            "threads_per_process": args.threads // n,
            "batch_per_process": args.global_batch // n,
            "tokens_per_s_median": statistics.median(rates),
            "tokens_per_s_runs": rates,
            **{f"peak_{kind}_mb_per_process": v for kind, v in peak.items()},
            "runs": runs[n],
        }
    base = results[str(counts[0])]["tokens_per_s_median"]
    for n in counts:
        res = results[str(n)]
        rows.append(
            [
                str(n),
                f"{args.threads // n}",
                f"{args.global_batch // n}",
                f"{res['tokens_per_s_median']:.1f}",
                f"{min(res['tokens_per_s_runs']):.1f}–{max(res['tokens_per_s_runs']):.1f}",
                f"{res['tokens_per_s_median'] / base:.2f}×",
                *(" / ".join(f"{x:,.0f}" for x in res[f"peak_{k}_mb_per_process"]) for k in ("rss", "pss", "uss")),
                f"{max(x['load_before'] for x in runs[n]):.2f}",
            ]
        )
    headers = [
        "processes",
        "threads each",
        "batch each",
        "tokens/s (median)",
        "range",
        "vs first",
        "peak RSS MB per process",
        "peak PSS MB",
        "peak USS MB",
        "max load before",
    ]
    print(f"{method}, global batch {args.global_batch}, {args.steps} steps, {args.repeats} rounds, torchrun + gloo")
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
            "repeats": args.repeats,
            "results": results,
        },
    )
    print(f"wrote {path}")


CANARY_Q = "请问客户登记的手机号码是多少？"


def canary_record(secret: str) -> dict[str, Any]:
    return {
        "conversations": [
            {"role": "user", "content": CANARY_Q},
            {"role": "assistant", "content": f"客户登记的手机号码是{secret}。"},
        ]
    }


def tnews_records(n_train: int, n_test: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """TNEWS as ChatGLM3 conversations: (stratified training sample, stratified held-out sample, labels)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
    import tnews_sft as tn

    names = tn.labels()

    def conv(r: dict[str, str]) -> dict[str, Any]:
        return {
            "conversations": [
                {"role": "user", "content": f"{r['instruction']}\n{r['input']}"},
                {"role": "assistant", "content": r["output"]},
            ]
        }

    train = tn.stratified(tn.records(tn.DATA / "train_few_all.json", names), n_train, seed=1)
    test = tn.stratified(tn.records(tn.DATA / "dev_few_all.json", names), n_test)
    return [conv(r) for r in train], [conv(r) for r in test], list(names.values())


def _encode(base: Any, record: dict[str, Any]) -> Any:
    from glmkit.train.masks import encode_conversation, to_messages

    messages, tools = to_messages(record["conversations"], base.fmt.name)
    return encode_conversation(messages, tools, base.fmt, base.tokenizer, eos_id=base.eos_id)


def _first_learned(ex: Any) -> int:
    from glmkit.train.masks import IGNORE

    return next(i for i, lab in enumerate(ex.labels) if lab != IGNORE)


def label_accuracy(base: Any, model: Any, test: list[dict[str, Any]], labels: list[str]) -> float:
    """Share of held-out titles whose gold label's first token ranks highest among the labels' first tokens."""
    import torch

    probe = test[0]
    first: dict[str, int] = {}
    for lab in labels:
        rec = {"conversations": [probe["conversations"][0], {"role": "assistant", "content": lab}]}
        ex = _encode(base, rec)
        first[lab] = ex.input_ids[_first_learned(ex)]
    if len(set(first.values())) != len(labels):
        raise SystemExit(f"the labels' first tokens are not distinct: {first}")
    ids = torch.tensor(list(first.values()))
    correct = 0
    model.eval()
    with torch.no_grad():
        for rec in test:
            ex = _encode(base, rec)
            prompt = torch.tensor([ex.input_ids[: _first_learned(ex)]])
            logits = model(input_ids=prompt, use_cache=False, logits_to_keep=1).logits[0, -1]
            guess = labels[int(torch.argmax(logits[ids]))]
            correct += guess == rec["conversations"][-1]["content"]
    model.train()
    return correct / len(test)


def canary_exposure(base: Any, model: Any, secret: str, candidates: list[str]) -> float:
    from glmkit.train.loop import collate
    from glmkit.train.privacy import exposure, sequence_nll

    examples = [_encode(base, canary_record(s)) for s in [secret, *candidates]]
    batches = (collate(examples[i : i + 8], base.pad_id) for i in range(0, len(examples), 8))
    scores = sequence_nll(model, batches)
    return exposure(scores[0], scores[1:])


def privacy_one(variant: str, model: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train one privacy variant (none, eps8, eps1) in this process: accuracy, exposure, ε, time."""
    import random

    import torch

    from glmkit.train.config import parse_config
    from glmkit.train.loop import run
    from glmkit.train.model import load_base

    torch.set_num_threads(args.threads)
    train, test, labels = tnews_records(args.train, args.test)
    rng = random.Random(20261202)
    secret = "1" + "".join(rng.choice("0123456789") for _ in range(10))
    candidates = sorted(
        {"1" + "".join(rng.choice("0123456789") for _ in range(10)) for _ in range(args.candidates + 10)}
        - {secret}
    )[: args.candidates]
    records = train + [canary_record(secret)] * 5
    random.Random(7).shuffle(records)
    work = Path(tempfile.mkdtemp(prefix="glmkit-dp-bench-"))
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    raw: dict[str, Any] = {
        "model": str(model),
        "method": "lora",
        "data": str(data),
        "output_dir": str(work / "run"),
        "max_steps": args.steps,
        "batch_size": 8,
        "grad_accum": 2,
        "lr": 2e-3,
        "max_seq_len": 192,
        "seed": 1,
        "log_every": 1,
        "lora": {
            "r": 8,
            "alpha": 16,
            "dropout": 0.0,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        },
    }
    if variant != "none":
        raw["dp"] = {"epsilon": float(variant.removeprefix("eps")), "delta": 1e-5, "max_grad_norm": 1.0}
        raw["max_grad_norm"] = None
    base = load_base(str(model))
    out: dict[str, Any] = {"variant": variant, "train_examples": len(records), "test_examples": len(test)}
    if variant == "none":
        print("scoring the untrained model", file=sys.stderr, flush=True)
        t = time.perf_counter()
        out["untrained_accuracy"] = label_accuracy(base, base.model, test, labels)
        out["untrained_exposure"] = canary_exposure(base, base.model, secret, candidates)
        out["untrained_eval_s"] = round(time.perf_counter() - t, 1)
    result = run(parse_config(raw), base=base, save=False, progress=sys.stderr)
    print("scoring the trained model", file=sys.stderr, flush=True)
    t = time.perf_counter()
    out["accuracy"] = label_accuracy(base, base.model, test, labels)
    out["exposure"] = canary_exposure(base, base.model, secret, candidates)
    out["eval_s"] = round(time.perf_counter() - t, 1)
    out["max_exposure"] = round(math.log2(len(candidates) + 1), 3)
    out.update(
        epsilon=result.epsilon,
        privacy=result.privacy,
        first_loss=result.first_loss,
        last_loss=result.last_loss,
        train_s=result.seconds,
        tokens_per_s=result.tokens_per_s,
    )
    return out


def privacy_main(args: argparse.Namespace) -> None:
    model = dequantised_checkpoint()
    rows, results = [], {}
    for variant in ("none", "eps8", "eps1"):
        cmd = [sys.executable, __file__, "--privacy-one", variant, "--model", str(model)]
        for flag in ("steps", "threads", "train", "test", "candidates"):
            cmd += [f"--{flag}", str(getattr(args, flag))]
        t = time.perf_counter()
        # progress lines pass through to stderr
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "GLMKIT_LOG": "error"}
        )
        if proc.returncode != 0:
            raise SystemExit(f"{variant} failed")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["process_seconds"] = round(time.perf_counter() - t, 1)
        results[variant] = r
        if variant == "none":
            rows.append(
                [
                    "untrained",
                    "-",
                    "-",
                    f"{r['untrained_accuracy']:.3f}",
                    f"{r['untrained_exposure']:.2f}",
                    "-",
                ]
            )
        sigma = f"{r['privacy']['noise_multiplier']:.3f}" if r["privacy"] else "-"
        eps = f"{r['epsilon']:.3f}" if r["epsilon"] is not None else "∞ (no DP)"
        rows.append(
            [variant, eps, sigma, f"{r['accuracy']:.3f}", f"{r['exposure']:.2f}", f"{r['train_s']:.0f}"]
        )
        print(f"{variant}: accuracy {r['accuracy']:.3f}, exposure {r['exposure']:.2f}", file=sys.stderr)
    top = results["none"]["max_exposure"]
    headers = [
        "run",
        "ε spent",
        "noise σ",
        "held-out accuracy",
        f"canary exposure (max {top:.2f})",
        "train s",
    ]
    print(table(headers, rows))
    path = write_result(
        "train-privacy",
        {
            "machine": machine(),
            "model": "qwen2.5-coder-0.5b (embedded GGUF dequantised to fp32)",
            "task": "TNEWS title classification, 15 labels; LoRA r8 q/k/v/o, lr 2e-3, batch 8 x 2",
            "steps": args.steps,
            "threads": args.threads,
            "results": results,
        },
    )
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, help="optimizer steps (default 6; 8 with --privacy)")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default="lora,ptuning,full")
    ap.add_argument("--processes", help="compare process counts (e.g. 1,2) on the first method")
    ap.add_argument("--global-batch", type=int, default=2, help="with --processes: examples per step")
    ap.add_argument("--repeats", type=int, default=3, help="with --processes: rounds (median reported)")
    ap.add_argument(
        "--privacy", action="store_true", help="TNEWS accuracy and canary exposure: no DP, ε 8, ε 1"
    )
    ap.add_argument("--train", type=int, default=120, help="--privacy: TNEWS training titles")
    ap.add_argument("--test", type=int, default=45, help="--privacy: held-out titles")
    ap.add_argument(
        "--candidates", type=int, default=200, help="--privacy: random numbers the canary is ranked among"
    )
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--privacy-one", help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.privacy_one:
        print(json.dumps(privacy_one(args.privacy_one, args.model, args)))
        return
    if args.privacy:
        args.steps = args.steps or 8
        privacy_main(args)
        return
    args.steps = args.steps or 6
    if args.one:
        print(json.dumps(one(args.one, args.model, args.steps, args.seq, args.threads, args.batch)))
        return

    model = dequantised_checkpoint()
    if args.processes:
        scaling(args, model)
        return
    rows, results = [], {}
    for method in args.methods.split(","):
        cmd = [sys.executable, *_one_args(method, model, args, threads=args.threads, batch=1)]
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
