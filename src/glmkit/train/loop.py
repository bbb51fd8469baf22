"""The training loop: a plain torch loop over one model, readable top to bottom.

- Optimizer: AdamW over the trainable parameters. Learning rate for optimizer step ``s`` (0-based):
  ``lr · (s + 1) / warmup`` during warm-up, then ``lr · (max_steps − s) / (max_steps − warmup)``: linear
  warm-up and linear decay, no step at lr 0.
- One optimizer step = ``grad_accum`` micro-batches of ``batch_size`` examples, padded on the right. The
  loss is the mean cross-entropy over every learned token of the whole step (token-weighted across
  micro-batches, so accumulation equals one big batch).
- Data order: epoch ``e`` is a permutation seeded by ``(seed, e)``; micro-batch ``g`` takes the next
  ``batch_size`` examples of that stream. A function of the step alone, so a resumed run sees the same data.
- Every ``log_every`` steps: a line on stderr and a JSON line in ``log.jsonl`` (step, loss — the mean over
  the steps since the last line, as transformers' Trainer logs it; one step of a small batch is too noisy to
  read —, lr, tokens, tokens/s, elapsed); with ``eval_data``, the eval loss before the first step of a fresh
  run and every ``eval_interval`` steps; every ``save_every`` steps and at the end an atomic checkpoint
  (``checkpoint.py``).
- More than one process (torchrun, accelerate launch): ``distributed.py`` reads the launch and checks it
  before anything loads; each rank takes its shard of every step, the loss is normalised over all ranks'
  tokens, and only rank 0 logs and writes.
- With ``dp`` (LoRA, P-Tuning v2), each step is a Poisson sample, clipped per example and noised by Opacus
  (``privacy.py``), and the log lines and the result carry the ε spent so far.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from glmkit.errors import InvalidRequestError
from glmkit.settings import Settings
from glmkit.train import checkpoint as ck
from glmkit.train import privacy
from glmkit.train.config import TrainConfig
from glmkit.train.data import Dataset, build_dataset
from glmkit.train.distributed import Processes, check_resume, detect_launch
from glmkit.train.masks import IGNORE, Example
from glmkit.train.methods import ADAPTER_METHODS, count_parameters, load_trainable, prepare, trainable_state
from glmkit.train.model import BaseModel, load_base

# Settings that may differ when a run is resumed: they do not change what is computed.
RESUMABLE_CHANGES = frozenset({"threads", "log_every", "save_every", "eval_every", "keep_checkpoints"})
# Settings checked as the global batch they make with the process count (distributed.check_resume).
BATCH_SHAPE = frozenset({"grad_accum", "global_batch_size"})


@dataclass(frozen=True)
class RunResult:
    output_dir: str
    method: str
    steps: int
    resumed_from: int | None
    first_loss: float | None
    last_loss: float | None
    eval_loss: float | None
    start_eval_loss: float | None  # eval loss before the first step (fresh runs with eval_data)
    checkpoint: str | None
    tokens: int  # tokens (padding excluded) forwarded by this process
    seconds: float
    tokens_per_s: float
    trainable_params: int
    total_params: int
    peak_rss_mb: float
    processes: int = 1
    rank: int = 0  # this process's rank; only rank 0 logs and writes
    epsilon: float | None = None  # dp: the ε spent at the end (at dp.delta), by Opacus' accountant
    privacy: dict[str, Any] | None = None  # dp: noise multiplier, sample rate, … (as in run.json)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lr_factor(step: int, warmup: int, max_steps: int) -> float:
    """The multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (max_steps - step) / (max_steps - warmup))


class Batches:
    """Micro-batches by index, from per-epoch permutations seeded by (seed, epoch)."""

    def __init__(self, examples: Sequence[Example], batch_size: int, seed: int, pad_id: int) -> None:
        self.examples, self.batch_size, self.seed, self.pad_id = examples, batch_size, seed, pad_id
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        import torch

        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms[epoch] = [int(i) for i in torch.randperm(len(self.examples), generator=g)]
        return self._perms[epoch]

    def micro_batch(self, index: int, rank: int = 0, processes: int = 1) -> dict[str, Any]:
        """Micro-batch ``index`` of rank ``rank``: the ranks' micro-batches ``index`` are consecutive slices
        of the stream, so ``processes`` ranks read what one process with a ``processes``-fold batch reads."""
        n = len(self.examples)
        chosen = []
        for k in range(self.batch_size):
            flat = (index * processes + rank) * self.batch_size + k
            chosen.append(self.examples[self._perm(flat // n)[flat % n]])
        return collate(chosen, self.pad_id)


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids`` / ``attention_mask`` / ``labels`` tensors [batch, longest]."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        mask[i, :n] = 1
        labels[i, :n] = torch.tensor(e.labels, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def learned_tokens(batch: dict[str, Any]) -> int:
    """Tokens that carry loss: a label at position t > 0 (position 0 has no prediction)."""
    return int((batch["labels"][:, 1:] != IGNORE).sum())


def loss_sum(model: Any, batch: dict[str, Any], *, use_cache: bool | None) -> Any:
    """Summed next-token cross-entropy over the learned tokens of one micro-batch."""
    import torch

    kwargs: dict[str, Any] = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if use_cache is not None:
        kwargs["use_cache"] = use_cache
    logits = model(**kwargs).logits  # [batch, T, vocab]
    pred = logits[:, :-1].float()  # position t predicts token t + 1
    target = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(
        pred.reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )


def evaluate(
    model: Any,
    data: Dataset,
    batch_size: int,
    pad_id: int,
    *,
    use_cache: bool | None,
    procs: Processes | None = None,
) -> float:
    """Token-mean loss over a dataset, in eval mode, without gradients (each rank evaluates its share of
    the batches, summed over ranks)."""
    import torch

    rank, world = (procs.launch.rank, procs.launch.processes) if procs and not procs.sharded else (0, 1)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(rank * batch_size, len(data.examples), batch_size * world):
            batch = collate(data.examples[i : i + batch_size], pad_id)
            batch = procs.to_device(batch) if procs is not None else batch
            n = learned_tokens(batch)
            if n:
                total += float(loss_sum(model, batch, use_cache=use_cache))
                count += n
    model.train()
    if procs is not None:
        total, count_f = procs.sum([total, count])
        count = int(count_f)
    return total / count if count else float("nan")


def _check_resume(cfg: TrainConfig, run_dir: Path) -> None:
    prior = ck.read_run(run_dir)["config"]
    now = cfg.model_dump(mode="json")
    changed = sorted(
        k
        for k in set(prior) | set(now)
        if prior.get(k) != now.get(k) and k not in RESUMABLE_CHANGES | BATCH_SHAPE
    )
    if changed:
        raise InvalidRequestError(
            f"cannot resume {run_dir}: the config changed ({', '.join(changed)}); a resumed run must "
            f"compute the same thing (only {', '.join(sorted(RESUMABLE_CHANGES))} may change)",
            param=changed[0],
        )


def _check_fresh(run_dir: Path) -> None:
    if (run_dir / ck.RUN_FILE).exists() or ck.list_checkpoints(run_dir):
        raise InvalidRequestError(
            f"output_dir {run_dir} already holds a run: pass --resume to continue it, or choose another "
            "output_dir",
            param="output_dir",
        )


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _optimizer_step(
    model: Any,
    micro: list[dict[str, Any]],
    params: list[Any],
    optimizer: Any,
    scheduler: Any,
    cfg: TrainConfig,
    use_cache: bool | None,
    procs: Processes,
) -> tuple[float, int]:
    """One optimizer step over ``grad_accum`` micro-batches of every rank: (token-mean loss of the step
    over all ranks, tokens this rank fed)."""
    n_learned = max(procs.sum([sum(learned_tokens(b) for b in micro)])[0], 1.0)
    scale = procs.loss_scale()  # 1 on one process
    total, fed = 0.0, 0
    for i, b in enumerate(micro):
        with procs.micro_step(model, last=i == len(micro) - 1):
            loss = loss_sum(model, b, use_cache=use_cache) / n_learned
            procs.backward(loss * scale if scale != 1 else loss)
        total += float(loss.detach())
        fed += int(b["attention_mask"].sum())
    if cfg.max_grad_norm is not None:
        procs.clip(model, params, cfg.max_grad_norm)
    [total] = procs.sum([total])
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total, fed


class _Reporter:
    """Progress lines on ``progress`` (stderr) and JSON lines appended to the run's log file."""

    def __init__(self, log_path: Path | None, progress: TextIO | None) -> None:
        self._file = log_path.open("a", encoding="utf-8") if log_path is not None else None
        self._progress = progress

    def say(self, text: str) -> None:
        if self._progress is not None:
            print(text, file=self._progress, flush=True)

    def record(self, rec: dict[str, Any], text: str) -> None:
        if self._file is not None:
            self._file.write(json.dumps(rec) + "\n")
            self._file.flush()
        self.say(text)

    def __enter__(self) -> _Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


def run(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    settings: Settings | None = None,
    on_step: Callable[[int], None] | None = None,
    progress: TextIO | None = sys.stderr,
    save: bool = True,
    base: BaseModel | None = None,
) -> RunResult:
    """Train ``cfg`` (continuing from the newest checkpoint when ``resume``). ``on_step(step)`` runs after
    every optimizer step (and its checkpoint); ``save=False`` writes nothing (benchmarks); ``base`` reuses
    an already loaded base model (it is modified in place)."""
    run_dir = cfg.output_dir
    launch = detect_launch(cfg)  # the launcher's settings, checked before anything loads
    start_ckpt = None
    if resume and (run_dir / ck.RUN_FILE).exists():
        _check_resume(cfg, run_dir)
        check_resume(launch, ck.read_run(run_dir))
        start_ckpt = ck.latest_checkpoint(run_dir)
    elif save:
        _check_fresh(run_dir)
    procs = Processes(launch, cfg)
    try:
        result = _run(cfg, procs, run_dir, start_ckpt, resume, settings, on_step, progress, save, base)
    except BaseException:
        procs.close(ok=False)
        raise
    procs.close()
    return result


def _run(
    cfg: TrainConfig,
    procs: Processes,
    run_dir: Path,
    start_ckpt: ck.Checkpoint | None,
    resume: bool,
    settings: Settings | None,
    on_step: Callable[[int], None] | None,
    progress: TextIO | None,
    save: bool,
    base: BaseModel | None,
) -> RunResult:
    import torch

    launch = procs.launch
    procs.wait()  # every rank has checked the run directory before rank 0 writes into it
    write = save and procs.is_main  # only rank 0 writes
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)

    # Everything that can fail on bad input happens before the first write.
    base = base or load_base(cfg.model, chat_format=cfg.chat_format, settings=settings)
    train_data = build_dataset(cfg.data, cfg.method, base, cfg.max_seq_len, "data")
    eval_data = (
        build_dataset(cfg.eval_data, cfg.method, base, cfg.max_seq_len, "eval_data")
        if cfg.eval_data
        else None
    )
    torch.manual_seed(cfg.seed)  # LoRA's A init, prefix init, dropout
    model = prepare(base.model, cfg)
    n_trainable, n_total = count_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.peak_lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup, cfg.max_steps)
    )
    dp = privacy.PrivateTraining(model, optimizer, cfg, len(train_data.examples)) if cfg.dp else None
    step = 0
    if start_ckpt is not None:
        if not procs.sharded:  # a sharded run restores its model and optimizer shards once prepared
            load_trainable(model, start_ckpt.trainable())
            optimizer.load_state_dict(start_ckpt.torch_file("optimizer.pt"))
        scheduler.load_state_dict(start_ckpt.torch_file("scheduler.pt"))
        step = start_ckpt.step
        if dp is not None:
            dp.load_state_dict(start_ckpt.json_file(privacy.PRIVACY_FILE))
    raw_model = model
    model, step_optimizer = procs.prepare(model, optimizer)  # DDP / FSDP / DeepSpeed wrappers, or as is
    procs.restore(start_ckpt)  # RNG state (each rank its own); a sharded run's shards
    if write and (start_ckpt is not None or resume):
        ck.trim_log(run_dir, step)  # log lines past the checkpoint were written after it
    if write:
        described = _describe(cfg, base, train_data, eval_data, n_trainable, n_total)
        ck.write_json_atomic(
            run_dir / ck.RUN_FILE,
            {**described, "distributed": launch.describe(), "privacy": dp.describe() if dp else None},
        )

    use_cache = None if cfg.method == "ptuning" else False  # prefix tuning hands its prefix in as a cache
    batches = Batches(train_data.examples, cfg.batch_size, cfg.seed, base.pad_id)
    report = _Reporter(run_dir / ck.LOG_FILE if write else None, progress if procs.is_main else None)
    for note in launch.notes:
        report.say(note)
    if start_ckpt is not None:
        report.say(f"resuming {run_dir} from step {step}")
    report.say(launch.banner())
    report.say(
        f"{cfg.method} on {base.source.name} ({base.architecture}, {base.fmt.name} format): "
        f"{n_trainable:,} of {n_total:,} parameters train; {len(train_data.examples)} examples, "
        f"{train_data.tokens:,} tokens"
        + (f", {train_data.truncated} truncated" if train_data.truncated else "")
    )
    if dp is not None:
        report.say(privacy.summary_line(dp))

    first_loss = last_loss = eval_loss = start_eval_loss = None
    window_losses: list[float] = []
    if eval_data is not None and step == 0:  # where the held-out loss starts, to compare with the end
        start_eval_loss = evaluate(
            procs.eval_model(model), eval_data, cfg.batch_size, base.pad_id, use_cache=use_cache, procs=procs
        )
        report.record(
            {"step": 0, "eval_loss": round(start_eval_loss, 6)}, f"step 0  eval loss {start_eval_loss:.4f}"
        )
    last_ckpt: ck.Checkpoint | None = start_ckpt
    first_step, tokens_total, t_start = step, 0, time.perf_counter()
    window_tokens, window_start = 0, time.perf_counter()
    model.train()
    with warnings.catch_warnings(), report:
        # PEFT's prefix tuning still passes ``past_key_values`` (renamed ``cache`` in transformers 5)
        warnings.filterwarnings("ignore", message=".*past_key_values.*", category=FutureWarning)
        while step < cfg.max_steps:
            lr = optimizer.param_groups[0]["lr"]
            if dp is None:
                micro = [
                    procs.to_device(
                        batches.micro_batch(step * launch.grad_accum + m, launch.rank, launch.processes)
                    )
                    for m in range(launch.grad_accum)
                ]
                loss, fed = _optimizer_step(
                    model, micro, params, step_optimizer, scheduler, cfg, use_cache, procs
                )
            else:  # one process only (refused otherwise before anything loads)
                sample = dp.sample(train_data.examples, base.pad_id, collate)
                loss, fed = dp.step(model, [procs.to_device(b) for b in sample], use_cache)
                scheduler.step()
            step += 1
            tokens_total += fed
            window_tokens += fed
            if not math.isnan(loss):  # an empty Poisson sample (dp) has no loss
                first_loss = loss if first_loss is None else first_loss
                last_loss = loss
                window_losses.append(loss)

            if step % cfg.log_every == 0 or step == cfg.max_steps:
                now = time.perf_counter()
                mean_loss = sum(window_losses) / len(window_losses) if window_losses else float("nan")
                [all_tokens] = procs.sum([window_tokens])  # every rank's tokens: the run's throughput
                tps = all_tokens / max(now - window_start, 1e-9)
                eta = (now - t_start) / (step - first_step) * (cfg.max_steps - step)
                eps = {"epsilon": round(dp.epsilon(), 4)} if dp is not None else {}
                report.record(
                    {
                        "step": step,
                        "loss": round(mean_loss, 6) if window_losses else None,
                        "lr": lr,
                        "tokens": int(all_tokens),
                        "tokens_per_s": round(tps, 1),
                        "elapsed_s": round(now - t_start, 3),
                    }
                    | eps,
                    f"step {step}/{cfg.max_steps}  loss {mean_loss:.4f}  lr {lr:.2e}  {tps:,.0f} tok/s  "
                    + (f"ε {eps['epsilon']:.3f}  " if eps else "")
                    + f"eta {_fmt_eta(eta)}",
                )
                window_tokens, window_start, window_losses = 0, time.perf_counter(), []
            if eval_data is not None and (step % cfg.eval_interval == 0 or step == cfg.max_steps):
                t_eval = time.perf_counter()
                eval_loss = evaluate(
                    procs.eval_model(model),
                    eval_data,
                    cfg.batch_size,
                    base.pad_id,
                    use_cache=use_cache,
                    procs=procs,
                )
                window_start += time.perf_counter() - t_eval  # tokens/s counts training time only
                report.record(
                    {"step": step, "eval_loss": round(eval_loss, 6)},
                    f"step {step}/{cfg.max_steps}  eval loss {eval_loss:.4f}",
                )
            if save and (step % cfg.save_every == 0 or step == cfg.max_steps):
                last_ckpt = _save(
                    procs,
                    run_dir,
                    step,
                    raw_model,
                    model,
                    optimizer,
                    scheduler,
                    cfg,
                    {privacy.PRIVACY_FILE: dp.state_dict()} if dp is not None else {},
                )
            if on_step is not None:
                on_step(step)
    epsilon = None
    if dp is not None:
        dp.close()  # Opacus' hooks off: the model is an ordinary PEFT model again
        epsilon = dp.epsilon()
        if write:
            privacy.record_spent(run_dir, epsilon, step)
    if write and cfg.method in ADAPTER_METHODS:
        ck.write_atomic_dir(
            run_dir / "adapter", lambda d: raw_model.save_pretrained(str(d), save_embedding_layers=False)
        )
    seconds = time.perf_counter() - t_start
    return RunResult(
        output_dir=str(run_dir),
        method=cfg.method,
        steps=step,
        resumed_from=start_ckpt.step if start_ckpt else None,
        first_loss=first_loss,
        last_loss=last_loss,
        eval_loss=eval_loss,
        start_eval_loss=start_eval_loss,
        checkpoint=str(last_ckpt.path) if last_ckpt else None,
        tokens=tokens_total,
        seconds=round(seconds, 3),
        tokens_per_s=round(tokens_total / max(seconds, 1e-9), 1),
        trainable_params=n_trainable,
        total_params=n_total,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        processes=launch.processes,
        rank=launch.rank,
        epsilon=epsilon,
        privacy=dp.describe() | {"epsilon_spent": epsilon} if dp is not None else None,
    )


def _save(
    procs: Processes,
    run_dir: Path,
    step: int,
    raw_model: Any,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    cfg: TrainConfig,
    extra: dict[str, Any],
) -> ck.Checkpoint:
    """Checkpoint ``step``: written by rank 0 (the others wait), with every rank's RNG state and ``extra``
    (a DP run's accountant state)."""
    rngs = procs.rng_states()  # collective: every rank
    if procs.sharded:
        keep = cfg.keep_checkpoints
        saved = procs.save_sharded(run_dir, step, raw_model, model, scheduler, rngs, keep=keep)
    elif procs.is_main:
        saved = ck.save_checkpoint(
            run_dir,
            step,
            {k: v.cpu() for k, v in trainable_state(raw_model).items()},  # .cpu(): as is on CPU
            optimizer,
            scheduler,
            keep=cfg.keep_checkpoints,
            extra={**(procs.rng_files(rngs) or {}), **extra},
        )
    else:
        saved = ck.Checkpoint(run_dir / ck.CHECKPOINTS / ck.checkpoint_name(step), step)
    procs.wait()
    return saved


def _describe(
    cfg: TrainConfig, base: BaseModel, train: Dataset, evald: Dataset | None, n_trainable: int, n_total: int
) -> dict[str, Any]:
    def stats(d: Dataset) -> dict[str, int]:
        return {
            "examples": len(d.examples),
            "records": d.records,
            "tokens": d.tokens,
            "truncated": d.truncated,
            "dropped": d.dropped,
        }

    return {
        "config": cfg.model_dump(mode="json"),
        "base": {
            "kind": base.kind,
            "source": str(base.source),
            "architecture": base.architecture,
            "format": base.fmt.name,
        },
        "data": stats(train),
        "eval_data": stats(evald) if evald is not None else None,
        "parameters": {"trainable": n_trainable, "total": n_total},
    }
