"""Differentially private fine-tuning (DP-SGD through Opacus) and the canary exposure that measures it.

``dp: {epsilon: 8, delta: 1e-5, max_grad_norm: 1.0}`` in a LoRA or P-Tuning v2 config makes ``loop.run``
train through ``PrivateTraining``:

- Opacus' ``PrivacyEngine.make_private_with_epsilon`` (RDP accountant) picks the noise multiplier σ so that
  the planned ``max_steps`` spend at most (ε, δ), and attaches its per-example gradient hooks to the PEFT
  model in place (``wrap_model=False``: parameter names, checkpoints and ``save_pretrained`` stay those of
  the PEFT model). The hooks compute per-example gradients of the trainable ``nn.Linear`` (LoRA A/B, the
  prefix MLP) and ``nn.Embedding`` (the prefix) layers; frozen base weights need none.
- Every step is a Poisson sample drawn by Opacus' own sampler: each training example is in it
  independently with probability ``q = 1 / ceil(N / (batch_size × grad_accum))``, so the step's size varies
  around ``N·q`` (it may even be empty). The sample is fed in micro-batches of ``batch_size`` (memory); the
  optimizer clips each example's gradient to ``max_grad_norm``, sums them, adds N(0, (σ·max_grad_norm)²)
  noise, divides by the expected size ``int(N·q)`` and takes one AdamW step.
- Each example's loss is the mean cross-entropy over its own learned tokens (the non-DP loop weights tokens
  across the step instead; per-example clipping needs a per-example loss).
- The accountant's history is saved in every checkpoint (``privacy.json``) and restored on resume; the
  sampler and the noise draw from torch's global generator, which checkpoints already restore, so a
  resumed DP run continues exactly where it stopped.

Refused before anything is written: full and pretrain (config), more than one process (``WORLD_SIZE``),
δ ≥ 1/N, and trainable modules Opacus' ``ModuleValidator`` rejects (named in the message).

``exposure`` is Carlini et al.'s ("The Secret Sharer", 2019) rank-based exposure of a planted canary;
``sequence_nll`` scores conversations (the canary and its random alternatives) under a model.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError
from glmkit.train.config import DPSettings, TrainConfig
from glmkit.train.masks import IGNORE

PRIVACY_FILE = "privacy.json"  # in each checkpoint of a DP run: the accountant's state
ACCOUNTANT = "rdp"


def check_single_process(environ: dict[str, str] | None = None) -> None:
    """DP accounting here assumes one process sees every example: refuse ``WORLD_SIZE`` > 1."""
    env = os.environ if environ is None else environ
    raw = env.get("WORLD_SIZE", "1").strip() or "1"
    try:
        world = int(raw)
    except ValueError:
        world = 1
    if world > 1:
        raise InvalidRequestError(
            f"dp: differentially private training runs in one process, but WORLD_SIZE={world}; start it "
            "without torchrun/accelerate (Opacus' distributed mode is not wired in)",
            param="dp",
        )


def check_model(model: Any) -> None:
    """Refuse a model whose trainable modules Opacus cannot compute per-example gradients for, naming them
    (Opacus' ``ModuleValidator`` rules: BatchNorm, LSTM/GRU/MultiheadAttention without the DP versions, …)."""
    from opacus.utils.module_utils import trainable_modules  # type: ignore[import-untyped]
    from opacus.validators import ModuleValidator  # type: ignore[import-untyped]

    problems = []
    for name, module in trainable_modules(model):
        validator = ModuleValidator.VALIDATORS.get(type(module))
        if validator is None:
            continue
        for err in validator(module):
            problems.append(f"{name or '(root)'} ({type(module).__name__}): {err}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; … and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise InvalidRequestError(f"dp: Opacus cannot train this model privately: {shown}", param="dp")


def check_delta(settings: DPSettings, n_examples: int) -> None:
    if settings.delta * n_examples >= 1:
        raise InvalidRequestError(
            f"dp.delta: must be below 1 / (training examples) = 1/{n_examples} = {1 / n_examples:.3g}, got "
            f"{settings.delta:g} (a larger δ allows leaking whole examples)",
            param="dp.delta",
        )


def example_losses(model: Any, batch: dict[str, Any], *, use_cache: bool | None) -> tuple[Any, Any]:
    """Per-row (summed next-token cross-entropy, learned-token count) of one micro-batch, as tensors [B]."""
    import torch

    kwargs: dict[str, Any] = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if use_cache is not None:
        kwargs["use_cache"] = use_cache
    logits = model(**kwargs).logits
    pred = logits[:, :-1].float()
    target = batch["labels"][:, 1:]
    tok = torch.nn.functional.cross_entropy(
        pred.reshape(-1, pred.shape[-1]), target.reshape(-1), ignore_index=IGNORE, reduction="none"
    ).reshape(target.shape)
    return tok.sum(dim=1), (target != IGNORE).sum(dim=1)


class PrivateTraining:
    """Opacus' PrivacyEngine attached to one run: Poisson steps, clipped and noised updates, ε spent."""

    def __init__(self, model: Any, optimizer: Any, cfg: TrainConfig, n_examples: int) -> None:
        import torch
        from opacus import PrivacyEngine  # type: ignore[import-untyped]

        assert cfg.dp is not None
        self.settings = cfg.dp
        self.batch_size = cfg.batch_size
        check_single_process()
        check_delta(cfg.dp, n_examples)
        check_model(model)
        logical = cfg.batch_size * cfg.grad_accum
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.arange(n_examples)), batch_size=logical
        )
        self.planned_steps = cfg.max_steps
        with warnings.catch_warnings():
            # torch's generator, not a CSPRNG (docs/train.md says why); an unused α order
            warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
            self.engine = PrivacyEngine(accountant=ACCOUNTANT)
            warnings.filterwarnings("ignore", message=".*Optimal order is the.*alpha.*")
            try:
                self.hooks, self.optimizer, dp_loader = self.engine.make_private_with_epsilon(
                    module=model,
                    optimizer=optimizer,
                    data_loader=loader,
                    target_epsilon=cfg.dp.epsilon,
                    target_delta=cfg.dp.delta,
                    # Opacus plans int(epochs / q) steps; + 0.5 keeps float error from losing one
                    epochs=(cfg.max_steps + 0.5) / len(loader),
                    max_grad_norm=cfg.dp.max_grad_norm,
                    loss_reduction="mean",
                    poisson_sampling=True,
                    grad_sample_mode="hooks",
                    wrap_model=False,
                )
            except ValueError as e:  # "The privacy budget is too low." and similar
                raise InvalidRequestError(
                    f"dp: Opacus cannot reach ε={cfg.dp.epsilon:g} at δ={cfg.dp.delta:g} over "
                    f"{cfg.max_steps} steps: {e}",
                    param="dp.epsilon",
                ) from e
        self.sample_rate = 1 / len(dp_loader)
        self.expected_batch_size = int(self.optimizer.expected_batch_size)
        self.noise_multiplier = float(self.optimizer.noise_multiplier)
        self._sampler = dp_loader.batch_sampler
        self._batches: Iterator[list[int]] | None = None
        self.sampled = 0  # examples in the steps of this process

    # --- one optimizer step -------------------------------------------------------------------------
    def next_sample(self) -> list[int]:
        """The next Poisson sample of example indices (Opacus' sampler; torch's global generator)."""
        assert self._sampler is not None
        while True:
            if self._batches is None:
                self._batches = iter(self._sampler)
            try:
                return [int(i) for i in next(self._batches)]
            except StopIteration:  # the sampler yields 1/q samples per "epoch"; they are independent
                self._batches = None

    def sample(
        self, examples: Sequence[Any], pad_id: int, collate: Callable[[Sequence[Any], int], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The next Poisson sample as micro-batches of at most ``batch_size`` examples (none when empty)."""
        chosen = [examples[i] for i in self.next_sample()]
        return [
            collate(chosen[i : i + self.batch_size], pad_id) for i in range(0, len(chosen), self.batch_size)
        ]

    def step(self, model: Any, micro: Sequence[dict[str, Any]], use_cache: bool | None) -> tuple[float, int]:
        """One private step over a Poisson sample fed as ``micro`` batches (``collate``d, at most
        ``batch_size`` rows each; none for an empty sample): each example's gradient clipped, the sum
        noised, one optimizer step. Returns (mean example loss, tokens fed)."""
        import torch

        n = sum(int(b["input_ids"].shape[0]) for b in micro)
        self.sampled += n
        total, fed = 0.0, 0
        if n == 0:  # an empty Poisson sample is still a step: the update is noise alone
            for p in self.optimizer.params:
                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype)
        for k, batch in enumerate(micro):
            nll, count = example_losses(model, batch, use_cache=use_cache)
            per_example = nll / count.clamp(min=1)
            with warnings.catch_warnings():  # Opacus' hooks on a model whose inputs need no grad
                warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")
                per_example.mean().backward()  # loss_reduction="mean": Opacus rescales to per-example grads
            total += float(per_example.detach().sum())
            fed += int(batch["attention_mask"].sum())
            if k < len(micro) - 1:
                self.optimizer.signal_skip_step(do_skip=True)  # clip and accumulate only
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return (total / n if n else float("nan")), fed

    # --- accounting ---------------------------------------------------------------------------------
    def epsilon(self) -> float:
        """ε spent so far at the configured δ (Opacus' RDP accountant)."""
        if not len(self.engine.accountant):
            return 0.0
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Optimal order is the.*alpha.*")
            return float(self.engine.get_epsilon(self.settings.delta))

    def state_dict(self) -> dict[str, Any]:
        acc = self.engine.accountant.state_dict()
        return {
            "mechanism": acc["mechanism"],
            "history": [[float(s), float(q), int(n)] for s, q, n in acc["history"]],
            "epsilon": self.epsilon(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mechanism") != ACCOUNTANT or not isinstance(state.get("history"), list):
            raise InvalidRequestError(
                f"the checkpoint's {PRIVACY_FILE} is not an {ACCOUNTANT} accountant state", param="checkpoint"
            )
        history = [(float(s), float(q), int(n)) for s, q, n in state["history"]]
        if any(
            not math.isclose(s, self.noise_multiplier) or not math.isclose(q, self.sample_rate)
            for s, q, _ in history
        ):
            raise InvalidRequestError(
                f"the checkpoint's {PRIVACY_FILE} was spent with another noise or sampling rate than this "
                "config plans",
                param="checkpoint",
            )
        self.engine.accountant.load_state_dict({"mechanism": ACCOUNTANT, "history": history})

    def describe(self) -> dict[str, Any]:
        """What run.json records about the privacy of the run."""
        return {
            "target_epsilon": self.settings.epsilon,
            "delta": self.settings.delta,
            "max_grad_norm": self.settings.max_grad_norm,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "expected_batch_size": self.expected_batch_size,
            "planned_steps": self.planned_steps,
            "accountant": ACCOUNTANT,
            "sampling": "poisson",
        }

    def close(self) -> None:
        """Remove Opacus' hooks from the model (it goes on being an ordinary PEFT model)."""
        self.hooks.cleanup()


def summary_line(dp: PrivateTraining) -> str:
    s = dp.settings
    return (
        f"dp: ε ≤ {s.epsilon:g} at δ = {s.delta:g} over {dp.planned_steps} steps: per-example clipping to "
        f"{s.max_grad_norm:g}, noise multiplier {dp.noise_multiplier:.3f}, Poisson sampling rate "
        f"{dp.sample_rate:.4g} (expected {dp.expected_batch_size} examples a step)"
    )


def record_spent(run_dir: Path, epsilon: float, steps: int) -> None:
    """Add the ε spent (and the steps taken) to the run's ``run.json`` at the end of a DP run."""
    from glmkit.train import checkpoint as ck

    desc = ck.read_run(run_dir)
    desc["privacy"] = {**(desc.get("privacy") or {}), "epsilon_spent": epsilon, "steps": steps}
    ck.write_json_atomic(run_dir / ck.RUN_FILE, desc)


# --- canaries and exposure -----------------------------------------------------------------------------


def exposure(canary_score: float, candidate_scores: Sequence[float]) -> float:
    """Exposure of a canary (Carlini et al., "The Secret Sharer"): ``log2(|R|) − log2(rank)``, where R is
    the canary together with ``candidate_scores`` (random secrets of the same form that were never
    trained on), scores are negative log-likelihoods (lower = more likely) and the canary's rank is
    1 + the number of candidates strictly more likely. Ranges from 0 (least likely of all) to
    ``log2(len(candidate_scores) + 1)`` (most likely of all)."""
    if not candidate_scores:
        raise InvalidRequestError("exposure needs at least one candidate score", param="candidates")
    values = [float(canary_score), *map(float, candidate_scores)]
    if any(math.isnan(v) for v in values):
        raise InvalidRequestError("exposure: a score is NaN", param="candidates")
    rank = 1 + sum(1 for c in values[1:] if c < values[0])
    return math.log2(len(values)) - math.log2(rank)


def sequence_nll(
    model: Any, batches: Iterable[dict[str, Any]], *, use_cache: bool | None = False
) -> list[float]:
    """Summed negative log-likelihood of each row's learned tokens over ``collate``d batches (eval mode,
    no gradients): the score of a canary and of its candidates."""
    import torch

    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        with torch.no_grad():
            for batch in batches:
                nll, _ = example_losses(model, batch, use_cache=use_cache)
                out.extend(float(v) for v in nll)
    finally:
        if was_training:
            model.train()
    return out
