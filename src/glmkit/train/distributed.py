"""``glmkit train run`` on more than one process: what the launcher asked for, checked before any weights
load, and the few collective operations the loop needs (Hugging Face accelerate's ``Accelerator``).

Launchers. ``torchrun`` (``python -m torch.distributed.run``) and ``accelerate launch`` start N copies of
``glmkit train run`` with ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and ``MASTER_ADDR``/``MASTER_PORT`` set;
``accelerate launch`` also passes its config as ``ACCELERATE_*`` variables (mixed precision, FSDP,
DeepSpeed). Without a launcher (``WORLD_SIZE`` unset or 1 and no mixed precision) the loop runs exactly as
before, without accelerate.

Strategies (``Launch.strategy``): ``single``; ``ddp`` (every rank holds the model, gradients are averaged;
the only one for LoRA / P-Tuning, whose trainable part is < 1 % of the model); ``fsdp`` and ``deepspeed``
(ZeRO-2/3, from accelerate's config) shard weights, gradients and optimizer state, for ``full`` and
``pretrain`` on GPUs. On CPU the backend is gloo; accelerate only builds ``Accelerator(cpu=True)`` into a
multi-process CPU run (without ``cpu=True`` a CPU-only torchrun run would silently be N single runs), and it
applies FSDP to GPU runs only, so FSDP/DeepSpeed on CPU are refused rather than silently turned into DDP.
``accelerate launch --cpu --num_processes N`` goes through accelerate's ``simple_launcher``, which starts
*one* process unless ``--mpirun_hostfile`` makes it use MPI: use torchrun on CPU.

Batches. ``batch_size`` is per process: one optimizer step takes ``batch_size × grad_accum × processes``
examples of the (seed, epoch) stream. Micro-batch ``m`` of step ``s`` on rank ``r`` takes the ``batch_size``
examples starting at ``((s · grad_accum + m) · processes + r) · batch_size``: together the ranks read
exactly what one process with a ``processes``-fold batch reads, each its own shard. The loss is divided by
the learned tokens of the whole step over all ranks (an all-reduce) and multiplied by ``processes``
(DDP averages gradients), so N processes compute what one process with the N-fold batch computes, up to
float rounding. ``global_batch_size`` in the config fixes the global batch and derives ``grad_accum``, so a
run may resume on another number of processes.

Only rank 0 logs, writes ``run.json``, checkpoints and the adapter; every rank validates the config and
the data (an error is the same on every rank, raised before any weights load). Checkpoints keep every
rank's RNG state (``rng-ranks.pt``) for dropout; a DDP checkpoint is otherwise rank 0's state, which every
rank shares.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from glmkit.errors import InvalidRequestError
from glmkit.train import checkpoint as ck
from glmkit.train.checkpoint import Checkpoint
from glmkit.train.config import TrainConfig

Strategy = Literal["single", "ddp", "fsdp", "deepspeed"]
SHARDED: tuple[Strategy, ...] = ("fsdp", "deepspeed")
ADAPTERS = ("lora", "ptuning")
RNG_RANKS = "rng-ranks.pt"
SHARDS = "shards"  # a sharded run's checkpoint: accelerate's save_state of every rank


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes")


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequestError(f"launcher: {name}={raw!r} is not an integer", param=name) from None


@dataclass(frozen=True)
class Device:
    """What the local device can do (``probe_device``; tests pass their own)."""

    kind: Literal["cpu", "cuda"]
    bf16: bool


def probe_device() -> Device:
    import torch

    if torch.cuda.is_available():
        return Device("cuda", bool(torch.cuda.is_bf16_supported()))
    return Device("cpu", True)  # torch autocasts bf16 on CPU


@dataclass(frozen=True)
class Launch:
    processes: int
    rank: int
    local_rank: int
    launcher: Literal["none", "torchrun", "accelerate"]
    device: Literal["cpu", "cuda"]
    strategy: Strategy
    mixed_precision: Literal["no", "bf16", "fp16"]
    zero_stage: int | None
    batch_size: int
    grad_accum: int
    notes: tuple[str, ...] = field(default=())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.grad_accum * self.processes

    @property
    def uses_accelerate(self) -> bool:
        return (
            self.processes > 1
            or self.mixed_precision != "no"
            or self.launcher == "accelerate"
            or self.device == "cuda"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "processes": self.processes,
            "strategy": self.strategy,
            "device": self.device,
            "mixed_precision": self.mixed_precision,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "global_batch": self.global_batch,
        }

    def banner(self) -> str:
        where = f"{self.processes} process{'es' if self.processes > 1 else ''}"
        if self.processes > 1:
            backend = "gloo" if self.device == "cpu" else "nccl"
            where += f" ({self.strategy}, {backend})"
        mp = f", {self.mixed_precision} autocast" if self.mixed_precision != "no" else ""
        return (
            f"{where}{mp}: global batch {self.global_batch} = batch_size {self.batch_size} × grad_accum "
            f"{self.grad_accum} × {self.processes} process{'es' if self.processes > 1 else ''}"
        )


def detect_launch(
    cfg: TrainConfig, env: Mapping[str, str] | None = None, device: Device | None = None
) -> Launch:
    """The launch this process is part of, from the launcher's environment, checked against ``cfg``: every
    unsupported combination is an ``InvalidRequestError`` naming the setting, before anything loads."""
    env = os.environ if env is None else env
    world = _int_env(env, "WORLD_SIZE", 1)
    rank = _int_env(env, "RANK", 0)
    local_rank = _int_env(env, "LOCAL_RANK", 0)
    if world < 1:
        raise InvalidRequestError(f"launcher: WORLD_SIZE must be >= 1, got {world}", param="WORLD_SIZE")
    if not 0 <= rank < world:
        raise InvalidRequestError(
            f"launcher: RANK={rank} is outside WORLD_SIZE={world} (ranks are 0..{world - 1})", param="RANK"
        )
    if world > 1 and cfg.dp is not None:
        raise InvalidRequestError(
            f"dp: differentially private training runs on one process, but WORLD_SIZE={world} (the privacy "
            "accounting assumes one process sees every example): run it without torchrun / accelerate "
            "launch, or drop the dp section",
            param="dp",
        )
    if world > 1 and not env.get("MASTER_ADDR"):
        raise InvalidRequestError(
            f"launcher: WORLD_SIZE={world} but MASTER_ADDR is not set: start the run with torchrun or "
            "accelerate launch, which set it",
            param="MASTER_ADDR",
        )
    accelerate_env = any(k.startswith("ACCELERATE_") for k in env)
    launcher: Literal["none", "torchrun", "accelerate"] = (
        "accelerate"
        if accelerate_env
        else ("torchrun" if "TORCHELASTIC_RUN_ID" in env or world > 1 else "none")
    )
    dev = device or probe_device()
    kind: Literal["cpu", "cuda"] = "cpu" if _flag(env, "ACCELERATE_USE_CPU") else dev.kind
    notes: list[str] = []
    if launcher == "accelerate" and kind == "cpu" and world == 1 and env.get("MASTER_ADDR"):
        notes.append(
            "note: accelerate launch --cpu starts one process without MPI (--mpirun_hostfile), whatever "
            "--num_processes says; on CPU start several with torchrun --nproc_per_node N"
        )

    mp = _mixed_precision(cfg, env, kind, dev)
    strategy, zero_stage = _strategy(cfg, env, world, kind)
    batch_size, grad_accum = cfg.batch_size, _grad_accum(cfg, world)
    return Launch(
        world,
        rank,
        local_rank,
        launcher,
        kind,
        strategy,
        mp,
        zero_stage,
        batch_size,
        grad_accum,
        tuple(notes),
    )


def _mixed_precision(
    cfg: TrainConfig, env: Mapping[str, str], kind: str, dev: Device
) -> Literal["no", "bf16", "fp16"]:
    from_env = env.get("ACCELERATE_MIXED_PRECISION", "").strip().lower() or None
    if from_env is not None and from_env not in ("no", "bf16", "fp16"):
        raise InvalidRequestError(
            f"launcher: mixed precision {from_env!r} (ACCELERATE_MIXED_PRECISION, accelerate's "
            "--mixed_precision) is not supported; use no, bf16 or fp16",
            param="mixed_precision",
        )
    mp = cfg.mixed_precision
    # accelerate launch always exports its setting ("no" by default): the config wins over that default,
    # but a launcher that asks for bf16/fp16 must agree with a config that says something else
    if mp is not None and from_env not in (None, "no", mp):
        raise InvalidRequestError(
            f"mixed_precision: the config says {mp!r} but the launcher says {from_env!r} "
            "(ACCELERATE_MIXED_PRECISION): make them agree",
            param="mixed_precision",
        )
    chosen = mp or from_env or "no"
    if chosen == "fp16" and kind == "cpu":
        raise InvalidRequestError(
            "mixed_precision: fp16 needs a GPU; this run is on CPU (accelerate would silently train in fp32) "
            "— use bf16 or no",
            param="mixed_precision",
        )
    if chosen == "bf16" and kind == "cuda" and not dev.bf16:
        raise InvalidRequestError(
            "mixed_precision: this GPU has no bf16 support (torch.cuda.is_bf16_supported() is False) — "
            "use fp16 or no",
            param="mixed_precision",
        )
    return "bf16" if chosen == "bf16" else "fp16" if chosen == "fp16" else "no"


def _strategy(cfg: TrainConfig, env: Mapping[str, str], world: int, kind: str) -> tuple[Strategy, int | None]:
    strategy: Strategy = "ddp" if world > 1 else "single"
    zero: int | None = None
    if _flag(env, "ACCELERATE_USE_DEEPSPEED"):
        strategy = "deepspeed"
        zero = _int_env(env, "ACCELERATE_DEEPSPEED_ZERO_STAGE", -1)
        zero = None if zero < 0 else zero
        name = f"DeepSpeed ZeRO-{zero}" if zero is not None else "DeepSpeed"
        setting = "ACCELERATE_USE_DEEPSPEED (accelerate config: distributed_type DEEPSPEED)"
    elif _flag(env, "ACCELERATE_USE_FSDP"):
        strategy, name = "fsdp", "FSDP"
        setting = "ACCELERATE_USE_FSDP (accelerate config: distributed_type FSDP)"
    if strategy in SHARDED:
        if cfg.method in ADAPTERS:
            raise InvalidRequestError(
                f"launcher: {name} with method {cfg.method!r} is not supported ({setting}): {cfg.method} "
                "trains < 1 % of the weights and runs data-parallel (DDP: accelerate's MULTI_GPU, or "
                "torchrun); shard full or pretrain runs",
                param="method",
            )
        if kind == "cpu":
            raise InvalidRequestError(
                f"launcher: {name} needs GPUs and this run is on CPU ({setting}); accelerate would "
                "silently run plain DDP — on CPU, launch with torchrun and no FSDP/DeepSpeed config",
                param="distributed_type",
            )
        if strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
            raise InvalidRequestError(
                f"launcher: {name} is selected ({setting}) but DeepSpeed is not installed: "
                "pip install deepspeed on the GPU machines, or use FSDP",
                param="distributed_type",
            )
        if strategy == "deepspeed" and zero is not None and zero not in (2, 3):
            raise InvalidRequestError(
                f"launcher: ZeRO stage {zero} (ACCELERATE_DEEPSPEED_ZERO_STAGE) is not supported; use 2 or 3",
                param="zero_stage",
            )
    return strategy, zero


def _grad_accum(cfg: TrainConfig, world: int) -> int:
    if cfg.global_batch_size is None:
        return cfg.grad_accum
    per_step = cfg.batch_size * world
    if cfg.global_batch_size % per_step:
        raise InvalidRequestError(
            f"global_batch_size: {cfg.global_batch_size} is not divisible by batch_size {cfg.batch_size} × "
            f"{world} processes (WORLD_SIZE={world}) = {per_step}: change batch_size, global_batch_size or "
            "the number of processes",
            param="global_batch_size",
        )
    return cfg.global_batch_size // per_step


def check_resume(launch: Launch, prior: Mapping[str, Any]) -> None:
    """A resumed run must keep the global batch of the run it continues (any number of processes)."""
    conf = prior.get("config", {})
    recorded = prior.get("distributed") or {}
    before = int(
        recorded.get("global_batch", int(conf.get("batch_size", 1)) * int(conf.get("grad_accum", 1)))
    )
    procs_before = int(recorded.get("processes", 1))
    if launch.strategy in SHARDED and procs_before != launch.processes:
        raise InvalidRequestError(
            f"cannot resume on {launch.processes} processes: this {launch.strategy} run was checkpointed "
            f"sharded over {procs_before}; resume it on {procs_before}",
            param="WORLD_SIZE",
        )
    if before != launch.global_batch:
        hint = (
            f"set global_batch_size: {before} in the config (grad_accum then follows the process count)"
            if before % (launch.batch_size * launch.processes) == 0
            else f"{before} is not divisible by batch_size {launch.batch_size} × {launch.processes} "
            f"processes: resume on {procs_before} process(es)"
        )
        raise InvalidRequestError(
            f"cannot resume on {launch.processes} process(es): the run's global batch was {before} "
            f"({procs_before} process(es)), here it would be {launch.global_batch} "
            f"(batch_size {launch.batch_size} × grad_accum {launch.grad_accum} × {launch.processes}); {hint}",
            param="global_batch_size",
        )


class Processes:
    """The collective operations of the loop: plain torch for one process, ``Accelerator`` otherwise."""

    def __init__(self, launch: Launch, cfg: TrainConfig) -> None:
        self.launch = launch
        self._cfg = cfg
        self._acc: Any = None
        if launch.uses_accelerate:
            from accelerate import Accelerator  # type: ignore[import-untyped]

            # device_placement: on CPU the model is where it must be already, and accelerate's
            # ``model.to("cpu")`` still rewrote every memory-mapped weight into a private copy (peak RSS
            # 5.2 GB instead of 2.7 on the embedded model); on a GPU it moves the model as it should.
            self._acc = Accelerator(
                cpu=launch.device == "cpu",
                device_placement=launch.device != "cpu",
                mixed_precision=launch.mixed_precision,
                gradient_accumulation_steps=launch.grad_accum if launch.strategy == "deepspeed" else 1,
            )
            if self._acc.num_processes != launch.processes:  # the launcher and accelerate disagree
                raise InvalidRequestError(
                    f"launcher: WORLD_SIZE={launch.processes} but accelerate set up "
                    f"{self._acc.num_processes} process(es) ({self._acc.distributed_type})",
                    param="WORLD_SIZE",
                )

    @property
    def is_main(self) -> bool:
        return self.launch.is_main

    def prepare(self, model: Any, optimizer: Any) -> tuple[Any, Any]:
        if self._acc is None:
            return model, optimizer
        if self.launch.strategy == "deepspeed":
            ds = self._acc.state.deepspeed_plugin.deepspeed_config
            ds["train_micro_batch_size_per_gpu"] = self.launch.batch_size
            ds["gradient_accumulation_steps"] = self.launch.grad_accum
            ds["train_batch_size"] = self.launch.global_batch
            ds["gradient_clipping"] = self._cfg.max_grad_norm or 0.0
        if self.launch.strategy == "ddp":
            _skip_frozen_broadcast(model)
        prepared = self._acc.prepare(model, optimizer)
        return prepared[0], prepared[1]

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A micro-batch (built on CPU) on the device accelerate placed the model on."""
        if self._acc is None or self._acc.device.type == "cpu":
            return batch
        return {k: v.to(self._acc.device) for k, v in batch.items()}

    def unwrap(self, model: Any) -> Any:
        return model if self._acc is None else self._acc.unwrap_model(model)

    @contextmanager
    def micro_step(self, model: Any, last: bool) -> Iterator[None]:
        """One micro-batch's forward and backward: gradients are synchronised on the last one only."""
        if self._acc is None:
            yield
            return
        self._acc.gradient_state._set_sync_gradients(last)  # DeepSpeed's accumulation boundary
        with nullcontext() if last else self._acc.no_sync(model):
            yield

    def loss_scale(self) -> float:
        """Factor on the token-normalised loss: DDP (and FSDP) average gradients over ranks, DeepSpeed
        also divides by its accumulation steps; the step's gradient must be the sum over all tokens."""
        scale = float(self.launch.processes)
        if self.launch.strategy == "deepspeed":
            scale *= self.launch.grad_accum
        return scale

    def backward(self, loss: Any) -> None:
        if self._acc is None:
            loss.backward()
        else:
            self._acc.backward(loss)

    def clip(self, model: Any, params: Sequence[Any], max_norm: float) -> None:
        if self._acc is None:
            import torch

            torch.nn.utils.clip_grad_norm_(params, max_norm)
        elif self.launch.strategy != "deepspeed":  # DeepSpeed clips in its step (gradient_clipping)
            which = model.parameters() if self.launch.strategy == "fsdp" else params
            self._acc.clip_grad_norm_(which, max_norm)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (float64)."""
        if self.launch.processes == 1 or self._acc is None:
            return list(values)
        import torch

        t = torch.tensor(list(values), dtype=torch.float64, device=self._acc.device)
        return [float(x) for x in self._acc.reduce(t, reduction="sum")]

    def wait(self) -> None:
        if self._acc is not None and self.launch.processes > 1:
            self._acc.wait_for_everyone()

    def rng_states(self) -> list[Any] | None:
        """Every rank's torch RNG state (rank order), for checkpoints; None on one process."""
        if self.launch.processes == 1:
            return None
        import torch
        from accelerate.utils import gather_object  # type: ignore[import-untyped]

        return list(gather_object([torch.get_rng_state()]))

    def rng_files(self, states: list[Any] | None) -> dict[str, Any] | None:
        return {RNG_RANKS: states} if states is not None else None

    def restore(self, ckpt: Checkpoint | None) -> None:
        """After ``prepare``: each rank takes its own saved RNG state (without one — another process
        count — rank 0 takes rank 0's and the others a state seeded by (seed, rank)); a sharded run also
        loads its model and optimizer shards. A fresh run only seeds the ranks above 0."""
        import torch

        if ckpt is None:
            self.seed_rank()
            return
        if self.sharded:
            self._acc.load_state(str(ckpt.path / SHARDS))
        states = ckpt.torch_file(RNG_RANKS) if (ckpt.path / RNG_RANKS).is_file() else None
        if states is not None and len(states) == self.launch.processes:
            torch.set_rng_state(states[self.launch.rank])
        elif self.launch.rank == 0:
            torch.set_rng_state(ckpt.torch_file("rng.pt"))
        else:
            self.seed_rank()

    def seed_rank(self) -> None:
        """Ranks above 0 draw their own dropout masks (rank 0 keeps the single-process stream)."""
        import torch

        if self.launch.rank:
            torch.manual_seed(self._cfg.seed * 1_000_003 + 7919 * self.launch.rank)

    @property
    def sharded(self) -> bool:
        return self.launch.strategy in SHARDED

    def eval_model(self, model: Any) -> Any:
        """What evaluation runs: the plain module (no gradient hooks), or the sharded wrapper, which
        every rank must run over the same batches."""
        return model if self.sharded else self.unwrap(model)

    def save_sharded(
        self,
        run_dir: Path,
        step: int,
        raw_model: Any,
        model: Any,
        scheduler: Any,
        rngs: list[Any] | None,
        *,
        keep: int,
    ) -> Checkpoint:
        """A sharded run's checkpoint: every rank writes its model and optimizer shards (accelerate's
        ``save_state``) into a hidden directory that rank 0 completes (the gathered weights, scheduler,
        RNG, ``state.json`` last) and renames into place. Not run here: FSDP and DeepSpeed need GPUs."""
        import torch
        from safetensors.torch import save_file

        full = self._acc.get_state_dict(model)  # collective: the whole weights on rank 0
        final = run_dir / ck.CHECKPOINTS / ck.checkpoint_name(step)
        tmp = final.with_name(f".{final.name}.sharded.tmp")
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.wait()
        self._acc.save_state(str(tmp / SHARDS))
        self.wait()
        if self.is_main:
            names = {n for n, p in raw_model.named_parameters() if p.requires_grad}
            save_file({k: v.contiguous() for k, v in full.items() if k in names}, str(tmp / ck.TRAINABLE))
            torch.save(scheduler.state_dict(), str(tmp / "scheduler.pt"))
            torch.save(torch.get_rng_state(), str(tmp / "rng.pt"))
            if rngs is not None:
                torch.save(rngs, str(tmp / RNG_RANKS))
            (tmp / ck.STATE).write_text(json.dumps({"step": step}) + "\n", encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
            ck.prune(run_dir, keep)
        return ck.Checkpoint(final, step)

    def close(self, ok: bool = True) -> None:
        """End the run: a barrier and the process group's end when ``ok`` (a failed rank must not wait
        for the others), then accelerate's state is reset so a later run in this process starts anew."""
        if self._acc is None:
            return
        if ok:
            self.wait()
            self._acc.end_training()
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        from accelerate.state import AcceleratorState  # type: ignore[import-untyped]

        AcceleratorState._reset_state(reset_partial_state=True)


def _skip_frozen_broadcast(model: Any) -> None:
    """DDP broadcasts rank 0's parameters into every other rank when it wraps the model, frozen ones
    included. Every rank loaded those from the same file, so the copy changes nothing — but it writes into
    each one, and on CPU that turns the weights' memory-mapped file pages into a private copy (measured on
    the embedded model, LoRA: 2.8 GB resident after wrapping instead of 0.4). DDP reduces only
    gradients of trainable parameters anyway, so telling it to leave the frozen ones alone changes no result:
    the trainable ones (LoRA's random init, prefix encoders) are still broadcast."""
    import torch

    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    if frozen:
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(  # type: ignore[no-untyped-call]
            model, frozen
        )

