"""Run directories and their checkpoints, written atomically.

    OUTPUT_DIR/
      run.json                  the resolved config, the base model and the dataset sizes
      log.jsonl                 one line per logged step ({"step", "loss", "lr", ...}) and per eval
      checkpoints/step-000100/  trainable.safetensors  optimizer.pt  scheduler.pt  rng.pt  state.json
                                (+ privacy.json in a dp run: the privacy accountant's history)
      adapter/                  at the end of a LoRA / P-Tuning run: a standard PEFT adapter directory

A checkpoint is built in a hidden temporary directory beside its final name and renamed into place, so a
kill leaves either the whole checkpoint or none; ``latest_checkpoint`` only sees complete ones
(``state.json`` is written last). Resuming restores the trainable weights, AdamW's moments, the scheduler,
the step and torch's RNG; the data order is a function of (seed, step), so it needs no state.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError

CHECKPOINTS = "checkpoints"
RUN_FILE = "run.json"
LOG_FILE = "log.jsonl"
TRAINABLE = "trainable.safetensors"
STATE = "state.json"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int

    def trainable(self) -> dict[str, Any]:
        from safetensors.torch import load_file

        return dict(load_file(str(self.path / TRAINABLE)))

    def torch_file(self, name: str) -> Any:
        import torch

        return torch.load(str(self.path / name), map_location="cpu", weights_only=True)

    def json_file(self, name: str) -> Any:
        p = self.path / name
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidRequestError(f"checkpoint {self.path} has no {name}", param="checkpoint") from None
        except (OSError, json.JSONDecodeError) as e:
            raise InvalidRequestError(f"cannot read {p}: {e}", param="checkpoint") from e


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    out = []
    for d in root.iterdir():
        if d.is_dir() and d.name.startswith("step-") and (d / STATE).is_file():
            try:
                step = int(json.loads((d / STATE).read_text(encoding="utf-8"))["step"])
            except (ValueError, KeyError, OSError):
                continue
            out.append(Checkpoint(d, step))
    return sorted(out, key=lambda c: c.step)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def write_atomic_dir(final: Path, fill: Callable[[Path], None]) -> Path:
    """Create ``final`` whole: ``fill`` writes into a temporary sibling that is then renamed into place
    (an existing ``final`` is replaced)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(
    run_dir: Path,
    step: int,
    trainable: dict[str, Any],
    optimizer: Any,
    scheduler: Any,
    *,
    keep: int,
    extra: dict[str, Any] | None = None,
) -> Checkpoint:
    """Write checkpoint ``step`` atomically, then delete all but the newest ``keep``. ``extra``: more
    ``{file name: object}`` written into it: ``*.json`` names as JSON (a DP run's accountant state), the
    rest with ``torch.save`` (every rank's RNG state on several processes)."""
    import torch
    from safetensors.torch import save_file

    def fill(d: Path) -> None:
        save_file(trainable, str(d / TRAINABLE))
        torch.save(optimizer.state_dict(), str(d / "optimizer.pt"))
        torch.save(scheduler.state_dict(), str(d / "scheduler.pt"))
        torch.save(torch.get_rng_state(), str(d / "rng.pt"))
        for name, obj in (extra or {}).items():
            if name.endswith(".json"):
                (d / name).write_text(json.dumps(obj) + "\n", encoding="utf-8")
            else:
                torch.save(obj, str(d / name))
        (d / STATE).write_text(json.dumps({"step": step}) + "\n", encoding="utf-8")

    path = write_atomic_dir(run_dir / CHECKPOINTS / checkpoint_name(step), fill)
    prune(run_dir, keep)
    return Checkpoint(path, step)


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)


def read_run(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run directory, or a clear error when it is not one."""
    p = run_dir / RUN_FILE
    if not p.is_file():
        raise InvalidRequestError(f"{run_dir} is not a glmkit training run (no {RUN_FILE})", param="run_dir")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidRequestError(f"cannot read {p}: {e}", param="run_dir") from e
    if not isinstance(data, dict) or "config" not in data:
        raise InvalidRequestError(f"{p} is not a run description", param="run_dir")
    return data


def trim_log(run_dir: Path, step: int) -> None:
    """Drop log lines past ``step`` (written after the checkpoint a resumed run restarts from)."""
    p = run_dir / LOG_FILE
    if not p.is_file():
        return
    kept = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= step:
                kept.append(line)
        except (ValueError, AttributeError):
            continue  # a line cut by the kill
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".log.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in kept))
    os.replace(tmp, p)
