"""``glmkit train run|merge|export``: fine-tune or continue pre-training from one YAML config, then turn the
run into something ``glmkit serve`` loads (a merged checkpoint, a GGUF LoRA adapter or a whole GGUF)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    t = sub.add_parser("train", help="LoRA, P-Tuning v2, full fine-tuning and continued pre-training")
    ts = t.add_subparsers(dest="train_command", required=True, metavar="ACTION")

    p = ts.add_parser(
        "run",
        help="train from a YAML config (see docs/train.md)",
        description="Progress goes to stderr; OUTPUT_DIR/log.jsonl has every logged step.",
    )
    p.add_argument("config", type=Path, help="the YAML training config")
    p.add_argument("--resume", action="store_true", help="continue from the run's newest checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_run)

    p = ts.add_parser("merge", help="write a run's model with its adapter merged, as a checkpoint directory")
    p.add_argument("run_dir", type=Path, help="the run's output_dir")
    p.add_argument("--out", type=Path, required=True, help="directory to write (new or empty)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_merge)

    p = ts.add_parser("export", help="write a run as a GGUF LoRA adapter or a whole GGUF model")
    p.add_argument("run_dir", type=Path, help="the run's output_dir")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--gguf-lora", type=Path, metavar="OUT.gguf", help="a llama.cpp LoRA adapter (LoRA runs)"
    )
    what.add_argument("--gguf", type=Path, metavar="OUT.gguf", help="the merged model as one GGUF file")
    p.add_argument(
        "--dtype", choices=("f32", "f16", "q8_0"), default="f16", help="--gguf weights (default f16)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)


def _print(result: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print("\n".join(lines))


def cmd_run(args: argparse.Namespace) -> int:
    from glmkit.train.config import load_config
    from glmkit.train.loop import run

    cfg = load_config(args.config)
    result = run(cfg, resume=args.resume, progress=None if args.quiet else sys.stderr).as_dict()
    if result["rank"] != 0:  # under a launcher, rank 0 reports for the run
        return 0
    lines = [
        f"trained {result['method']} for {result['steps']} steps"
        + (f" (resumed at step {result['resumed_from']})" if result["resumed_from"] is not None else ""),
    ]
    if result["first_loss"] is not None:
        lines.append(f"loss {result['first_loss']:.4f} → {result['last_loss']:.4f}")
    if result["eval_loss"] is not None:
        lines.append(f"eval loss {result['eval_loss']:.4f}")
    if result["epsilon"] is not None:
        dp = result["privacy"]
        lines.append(
            f"differential privacy: ε = {result['epsilon']:.3f} spent of {dp['target_epsilon']:g} "
            f"(δ = {dp['delta']:g}, noise multiplier {dp['noise_multiplier']:.3f})"
        )
    lines.append(f"{result['tokens_per_s']:,.0f} tokens/s, peak RSS {result['peak_rss_mb']:,.0f} MB")
    lines.append(f"checkpoint: {result['checkpoint']}")
    _print(result, args.json, lines)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from glmkit.train.export import merge

    result = merge(args.run_dir, args.out)
    _print(
        result,
        args.json,
        [
            f"merged step {result['step']} into {result['out']}",
            f"serve it: glmkit serve --model {result['out']}",
        ],
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from glmkit.train.gguf_export import export_lora, export_model

    if args.gguf_lora is not None:
        result = export_lora(args.run_dir, args.gguf_lora)
        lines = [
            f"wrote LoRA adapter {result['out']} ({result['tensors']} tensors, r={result['r']}, "
            f"alpha={result['alpha']:g}) from step {result['step']}"
        ]
    else:
        result = export_model(args.run_dir, args.gguf, args.dtype)
        lines = [
            f"wrote {result['out']} ({result['dtype']}, {result['bytes'] / 1e6:,.1f} MB) from step "
            f"{result['step']}",
            f"serve it: glmkit serve --model {result['out']}",
        ]
    _print(result, args.json, lines)
    return 0
