"""llama.cpp backend on llama-cpp-python's low-level API: one loaded model, several sequences decoded
together in one batch per step.

A single worker thread owns the llama context. ``generate`` enqueues a request and reads sampled ids
from its own queue; the worker admits requests between steps into free sequence slots, builds one batch
of every generating sequence's last token plus prompt chunks up to ``n_batch``, decodes, and samples each
sequence with its own sampler chain. A cancelled or abandoned request frees its slot at the next step.
This follows llama.cpp's own server (tools/server): slots = sequence ids.

Each sequence has its own KV stream (``kv_unified`` off), and llama.cpp can only put sequences with
consecutive ids into one micro-batch (``split_equal``); each micro-batch costs a pass over all the weights
(~20 ms for the 0.5B model on 2 cores, against ~9 ms per token in it). So the worker keeps the running
sequences on consecutive slots: a new request takes a free slot next to them, a hole left by a finished
sequence is filled by moving the highest one down (a copy of its KV cells, ``_move``), and a step's batch
lists its tokens in slot order, so running decodes and all new prompts' first tokens share one
micro-batch. A new prompt reuses the longest cached prefix of any slot, its own or another's (copied
over): chat requests share a system prompt, and a prefix costs ~5 ms a token to prefill here.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from glmkit.errors import (
    BackendError,
    CancelledError,
    InvalidRequestError,
    ModelLoadError,
)
from glmkit.runtime.backends.llamacpp_lib import (
    LlamaTokenizer,
    QuietLog,
    check_gguf,
    default_extra_buffers,
    load_lib,
)
from glmkit.runtime.protocol import EngineInfo, Scored
from glmkit.types import CancelToken, Constraint, ResolvedSampling

log = logging.getLogger(__name__)
PENALTY_LAST_N = 64
# Copy another slot's cached prefix instead of prefilling it when that saves at least this many tokens
# (a copy moves ~12 KB of KV a token for the 0.5B model: far under a millisecond for a chat prompt).
MIN_COPY_GAIN = 4
T = TypeVar("T")
_END = object()


@dataclass
class _Request:
    prompt: list[int]
    sampling: ResolvedSampling
    stop_ids: frozenset[int]
    cancel: CancelToken | None
    out: queue.Queue[Any] = field(default_factory=queue.Queue)
    abandoned: bool = False
    grammar: Any = None  # a llama_sampler (grammar), made on the caller's thread so errors reach it


@dataclass
class _Sampler:
    """How one sequence picks its next token. The repetition penalty is applied here, to the few logits of
    the last ``PENALTY_LAST_N`` tokens in llama.cpp's own logits row, with llama.cpp's float arithmetic
    (sign-aware: ``x * p`` if ``x <= 0`` else ``x / p``), before the chain runs: llama.cpp's penalties
    sampler does the same but looks every one of the vocabulary's 151,936 candidates up in a hash map,
    0.55 ms a sequence per step here. Plain greedy (no grammar) is an argmax over the row, as llama.cpp's
    greedy sampler does (the first maximum), without copying the row into candidates."""

    chain: Any  # llama.cpp's chain: grammar, then greedy or top-k/top-p/temperature/dist; None: argmax
    penalty: float
    recent: collections.deque[int]


@dataclass
class _Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV is in this sequence
    req: _Request | None = None
    pending: list[int] = field(default_factory=list)  # prompt tokens not decoded yet
    last: int = -1  # last sampled token, to decode next step
    generated: int = 0
    sampler: _Sampler | None = None


def _file_id(p: Path) -> tuple[int, int, int, int] | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class LlamaEngine:
    """A GGUF model served by llama.cpp with ``n_seq_max`` concurrent sequences of ``n_ctx`` tokens each."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_ctx: int = 4096,
        n_threads: int = 1,
        n_seq_max: int = 1,
        n_batch: int = 512,
        name: str | None = None,
        extra_buffers: bool | None = None,
        use_mmap: bool = False,
        lora: str | os.PathLike[str] | None = None,
        lora_scale: float = 1.0,
    ) -> None:
        """``lora``: a GGUF LoRA adapter (``glmkit train export --gguf-lora``) applied to every sequence
        with weight ``lora_scale`` (llama.cpp adds ``lora_scale · alpha / r · B A x``)."""
        p = Path(path)
        check_gguf(p)
        if lora is not None:
            check_gguf(Path(lora))
        self._file_id = _file_id(p)
        if n_threads < 1:
            raise InvalidRequestError(f"n_threads must be >= 1, got {n_threads}", param="n_threads")
        if not 1 <= n_seq_max <= 256:
            raise InvalidRequestError(
                f"n_seq_max must be within [1, 256], got {n_seq_max}", param="n_seq_max"
            )
        QuietLog.install()
        lc = self._lc = load_lib()
        mparams = lc.llama_model_default_params()
        mparams.n_gpu_layers = 0
        mparams.use_extra_bufts = default_extra_buffers() if extra_buffers is None else extra_buffers
        # Read into memory rather than mmap: a model file truncated or rewritten under a running server
        # would otherwise fault (SIGBUS) or feed garbage weights; see file_problem().
        mparams.use_mmap = use_mmap
        self._model = lc.llama_model_load_from_file(str(p).encode(), mparams)
        if not self._model:
            raise ModelLoadError(
                f"llama.cpp could not load {p}: the file is truncated or corrupt, or its architecture is not "
                "supported by this llama.cpp build (run with GLMKIT_LOG=debug to see llama.cpp's reason)"
            )
        n_ctx_train = lc.llama_model_n_ctx_train(self._model)
        n_ctx = min(n_ctx, n_ctx_train) if n_ctx_train > 0 else n_ctx
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = n_ctx * n_seq_max
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = n_seq_max
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        cparams.kv_unified = False
        # Exactness over a few percent of speed: flash attention perturbs batched logits (~1e-2).
        cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cparams.no_perf = True
        self._ctx = lc.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            lc.llama_model_free(self._model)
            raise ModelLoadError(
                f"llama.cpp could not create a context of {n_ctx}×{n_seq_max} tokens for {p}"
            )
        self._lora = None
        if lora is not None:
            self._lora = self._apply_lora(Path(lora), lora_scale)
        self._vocab = lc.llama_model_get_vocab(self._model)
        self._mem = lc.llama_get_memory(self._ctx)
        self.n_vocab = lc.llama_vocab_n_tokens(self._vocab)
        self.tokenizer = LlamaTokenizer(self._vocab)
        self.n_batch = n_batch
        arch = self._meta("general.architecture")
        tmpl = lc.llama_model_chat_template(self._model, None)
        self.info = EngineInfo(
            name=name or p.stem,
            backend="llamacpp",
            n_ctx=n_ctx,
            path=str(p),
            architecture=arch,
            chat_template=tmpl.decode("utf-8") if tmpl else None,
            size_bytes=p.stat().st_size,
            features=frozenset({"grammar", "logprobs", "batching"}),
        )
        self.bos_text = self._special_text(lc.llama_vocab_bos(self._vocab))
        self.eos_text = self._special_text(lc.llama_vocab_eos(self._vocab))
        self._slots = [_Slot(i) for i in range(n_seq_max)]
        self._incoming: queue.Queue[_Request | None] = queue.Queue()
        self._waiting: list[_Request] = []
        self._closed = False
        self._batch = lc.llama_batch_init(max(n_batch, n_seq_max), 0, 1)
        self._worker = threading.Thread(target=self._run, name=f"llamacpp-{self.info.name}", daemon=True)
        self._worker.start()

    def _apply_lora(self, path: Path, scale: float) -> Any:
        """Load a GGUF LoRA adapter onto the model and set it on the context (before any decode)."""
        lc = self._lc
        adapter = lc.llama_adapter_lora_init(self._model, str(path).encode())
        if not adapter:
            lc.llama_free(self._ctx)
            lc.llama_model_free(self._model)
            raise ModelLoadError(
                f"llama.cpp could not load the LoRA adapter {path}: it is not a LoRA GGUF, or it was trained "
                "on another base model (architecture or tensor shapes differ; GLMKIT_LOG=debug shows why)"
            )
        adapters = (lc.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(scale)
        if lc.llama_set_adapters_lora(self._ctx, adapters, 1, scales) != 0:
            lc.llama_adapter_lora_free(adapter)
            lc.llama_free(self._ctx)
            lc.llama_model_free(self._model)
            raise ModelLoadError(f"llama.cpp refused to apply the LoRA adapter {path}")
        return adapter

    # -- metadata ---------------------------------------------------------------------------------------
    def _meta(self, key: str) -> str:
        buf = ctypes.create_string_buffer(256)
        n = self._lc.llama_model_meta_val_str(self._model, key.encode(), buf, 256)
        return buf.value.decode("utf-8", "replace") if n >= 0 else ""

    def _special_text(self, tid: int) -> str:
        if tid < 0:
            return ""
        buf = ctypes.create_string_buffer(64)
        n = self._lc.llama_token_to_piece(self._vocab, tid, buf, 64, 0, True)
        return buf.raw[: max(n, 0)].decode("utf-8", "replace")

    @property
    def n_seq_max(self) -> int:
        return len(self._slots)

    # -- public -------------------------------------------------------------------------------------------
    def generate(
        self,
        prompt_ids: Sequence[int],
        sampling: ResolvedSampling,
        stop_ids: frozenset[int],
        cancel: CancelToken | None = None,
    ) -> Iterator[int | Scored]:
        if self._closed:
            raise ModelLoadError(f"model {self.info.name} is closed")
        problem = self.file_problem()
        if problem is not None:
            raise ModelLoadError(problem)
        if not prompt_ids:
            raise InvalidRequestError("the prompt is empty", param="messages")
        if len(prompt_ids) >= self.info.n_ctx:
            raise InvalidRequestError(
                f"prompt of {len(prompt_ids)} tokens does not fit n_ctx={self.info.n_ctx}"
            )
        bad = [t for t in prompt_ids if not 0 <= t < self.n_vocab]
        if bad:
            raise InvalidRequestError(f"prompt has token ids outside the vocabulary: {bad[:5]}")
        req = _Request(list(prompt_ids), sampling, stop_ids, cancel)
        if sampling.constraint is not None:
            req.grammar = self._grammar(sampling.constraint)
        return self._stream(req)

    def _grammar(self, c: Constraint) -> Any:
        """A llama.cpp grammar sampler for a constraint; a schema it cannot take is the caller's error."""
        from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

        if c.kind == "json_object":
            text = JSON_GBNF
        elif c.kind == "json_schema":
            try:
                text = json_schema_to_gbnf(c.value)
            except Exception as e:  # noqa: BLE001 - the converter raises bare Exceptions on bad schemas
                raise InvalidRequestError(
                    f"the JSON schema cannot be turned into a grammar: {e}", param="response_format"
                ) from None
        else:
            text = c.value
        g = self._lc.llama_sampler_init_grammar(self._vocab, text.encode(), b"root")
        if not g:
            raise InvalidRequestError("the grammar does not parse (llama.cpp rejected it)", param="grammar")
        return g

    def file_problem(self) -> str | None:
        """Why the model file on disk is no longer the one loaded (gone, replaced, truncated or rewritten),
        or None. New requests are refused (503) until the server is restarted with a good file; requests
        already decoding finish from memory."""
        path = Path(self.info.path)
        now = _file_id(path)
        if now is None:
            return f"the model file {path} has vanished since it was loaded; restore it and restart glmkit"
        if now != self._file_id:
            return (
                f"the model file {path} changed on disk since it was loaded (size {now[2]} bytes, was "
                f"{self._file_id[2] if self._file_id else '?'}): restart glmkit to load a verified file"
            )
        return None

    def stats(self) -> dict[str, int]:
        """Sequences decoding now and requests waiting for a slot (read without locking: a snapshot)."""
        active = sum(1 for s in self._slots if s.req is not None)
        return {
            "active": active,
            "waiting": len(self._waiting) + self._incoming.qsize(),
            "slots": len(self._slots),
        }

    def _stream(self, req: _Request) -> Iterator[int | Scored]:
        self._incoming.put(req)
        try:
            while True:
                item = req.out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            req.abandoned = True  # a consumer that stops reading frees its slot at the next step

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._incoming.put(None)
        self._worker.join(timeout=30)
        lc = self._lc
        for s in self._slots:
            if s.sampler is not None and s.sampler.chain is not None:
                lc.llama_sampler_free(s.sampler.chain)
            s.sampler = None
        lc.llama_batch_free(self._batch)
        lc.llama_free(self._ctx)
        if self._lora is not None:
            lc.llama_adapter_lora_free(self._lora)
        lc.llama_model_free(self._model)

    def _on_worker(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker between steps (it owns the context) and hand back its result or error.
        One-off jobs (scoring, cross-checks) need an idle engine: they reuse the first sequences."""
        result: queue.Queue[Any] = queue.Queue()

        def job() -> None:
            try:
                if any(s.req is not None for s in self._slots):
                    raise BackendError(f"{what}() needs an idle engine")
                result.put(fn())
            except Exception as e:  # noqa: BLE001 - handed to the caller
                result.put(e)

        self._incoming.put(job)  # type: ignore[arg-type]
        item = result.get()
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    def _reset(self, k: int) -> int:
        seq = self._slots[k].seq_id
        self._lc.llama_memory_seq_rm(self._mem, seq, -1, -1)
        self._slots[k].cached = []
        return seq

    def logits(self, prompt_ids: Sequence[int]) -> list[float]:
        """Next-token logits after ``prompt_ids`` (tests and cross-checks; blocks the worker once)."""

        def run() -> list[float]:
            self._decode_chunks(self._reset(0), list(prompt_ids), 0)
            return list(self._lc.llama_get_logits_ith(self._ctx, -1)[: self.n_vocab])

        return self._on_worker("logits", run)

    def continuation_logprob(self, prefix_ids: Sequence[int], continuation: Sequence[int]) -> float:
        """Sum of log P(continuation | prefix), teacher-forced (scoring: rerankers, evaluation)."""
        if not prefix_ids or not continuation:
            raise InvalidRequestError("continuation_logprob needs a prefix and a continuation")
        if len(prefix_ids) + len(continuation) >= self.info.n_ctx:
            raise InvalidRequestError(f"prefix and continuation exceed n_ctx={self.info.n_ctx}")
        toks = list(prefix_ids) + list(continuation)
        start = len(prefix_ids) - 1  # logits at this position predict continuation[0]

        def run() -> float:
            lc = self._lc
            seq = self._reset(0)
            total = 0.0
            for off in range(0, len(toks) - 1, self.n_batch):
                chunk = toks[off : min(off + self.n_batch, len(toks) - 1)]
                for j, t in enumerate(chunk):
                    self._put(self._batch, j, t, off + j, seq, off + j >= start)
                self._batch.n_tokens = len(chunk)
                if lc.llama_decode(self._ctx, self._batch) != 0:
                    raise BackendError("llama_decode failed")
                for j in range(max(0, start - off), len(chunk)):
                    row = np.ctypeslib.as_array(lc.llama_get_logits_ith(self._ctx, j), shape=(self.n_vocab,))
                    total += _logprob(row.astype(np.float64), toks[off + j + 1])
            return total

        return self._on_worker("continuation_logprob", run)

    def logits_together(self, prompts: Sequence[Sequence[int]]) -> list[list[float]]:
        """Next-token logits after each prompt, all decoded in one batch on their own sequences.

        Tests compare this with :meth:`logits` to check that batching does not mix sequences up.
        """
        if not 1 <= len(prompts) <= self.n_seq_max:
            raise InvalidRequestError(f"logits_together takes 1..{self.n_seq_max} prompts")
        if sum(len(p) for p in prompts) > self.n_batch:
            raise InvalidRequestError(f"logits_together: prompts exceed n_batch={self.n_batch}")

        def run() -> list[list[float]]:
            n = 0
            rows = []
            for k, toks in enumerate(prompts):
                seq = self._reset(k)
                for j, t in enumerate(toks):
                    self._put(self._batch, n, t, j, seq, j == len(toks) - 1)
                    n += 1
                rows.append(n - 1)
            self._batch.n_tokens = n
            rc = self._lc.llama_decode(self._ctx, self._batch)
            if rc != 0:
                raise BackendError(f"llama_decode returned {rc}")
            return [list(self._lc.llama_get_logits_ith(self._ctx, i)[: self.n_vocab]) for i in rows]

        return self._on_worker("logits_together", run)

    # -- the worker -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            busy = any(s.req is not None for s in self._slots) or bool(self._waiting)
            items: list[Any] = []
            try:
                items.append(self._incoming.get(block=not busy))
                while True:
                    items.append(self._incoming.get_nowait())
            except queue.Empty:
                pass
            for item in items:
                if item is None:
                    for s in self._slots:
                        self._finish(s, CancelledError("the model is shutting down"))
                    for r in self._waiting:
                        self._drop_grammar(r)
                        r.out.put(CancelledError("the model is shutting down"))
                        r.out.put(_END)
                    return
                if isinstance(item, _Request):
                    self._waiting.append(item)
                else:
                    item()  # a one-off job (logits), run between steps
            self._drop_cancelled()
            self._admit()
            if any(s.req is not None for s in self._slots):
                try:
                    self._compact()
                    self._step()
                except Exception as e:
                    log.exception("llama.cpp decode step failed")
                    for s in self._slots:
                        if s.req is not None:
                            self._finish(s, BackendError(f"llama.cpp decode failed: {e}"))

    def _admit(self) -> None:
        while self._waiting:
            free = [s for s in self._slots if s.req is None]
            if not free:
                return
            req = self._waiting.pop(0)
            if req.abandoned or (req.cancel is not None and req.cancel.cancelled):
                self._drop_grammar(req)
                req.out.put(_END)
                continue
            slot = self._pick_slot(free, req.prompt)
            keep = 0
            if not req.sampling.reproducible:
                keep = _common_prefix(slot.cached, req.prompt)
                src = max(self._slots, key=lambda s: _common_prefix(s.cached, req.prompt))
                if _common_prefix(src.cached, req.prompt) - keep >= MIN_COPY_GAIN:
                    self._copy_kv(src, slot)  # on failure the slot holds nothing: keep becomes 0
                    keep = _common_prefix(slot.cached, req.prompt)
            keep = min(keep, len(req.prompt) - 1)  # always decode at least one prompt token for logits
            self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, keep, -1)
            slot.cached = slot.cached[:keep]
            slot.req, slot.pending, slot.generated, slot.last = req, req.prompt[keep:], 0, -1
            slot.sampler = self._make_sampler(req.sampling, req.prompt, req.grammar)
            req.grammar = None  # the chain owns it now

    def _pick_slot(self, free: list[_Slot], prompt: list[int]) -> _Slot:
        """The free slot that keeps the running sequences on consecutive ids (next to them), and among
        those the one whose own cache shares the longest prefix with ``prompt`` (no copy needed)."""
        busy = [s.seq_id for s in self._slots if s.req is not None]

        def gaps(s: _Slot) -> int:
            ids = [*busy, s.seq_id]
            return max(ids) - min(ids) + 1 - len(ids)

        return min(free, key=lambda s: (gaps(s), -_common_prefix(s.cached, prompt), s.seq_id))

    def _copy_kv(self, src: _Slot, dst: _Slot) -> bool:
        """Make ``dst``'s sequence a copy of ``src``'s cached tokens (their KV cells, copied through
        llama.cpp's per-sequence state, as llama-server's prompt cache does). False if llama.cpp refused;
        then ``dst`` holds nothing."""
        if src is dst:
            return True
        lc = self._lc
        size = lc.llama_state_seq_get_size(self._ctx, src.seq_id)
        buf = (ctypes.c_uint8 * size)()
        got = lc.llama_state_seq_get_data(self._ctx, buf, size, src.seq_id)
        if got == 0 or lc.llama_state_seq_set_data(self._ctx, buf, got, dst.seq_id) == 0:
            log.warning("llama.cpp could not copy sequence %d's KV to %d", src.seq_id, dst.seq_id)
            lc.llama_memory_seq_rm(self._mem, dst.seq_id, -1, -1)
            dst.cached = []
            return False
        dst.cached = list(src.cached)
        return True

    def _compact(self) -> None:
        """Close the holes between running sequences: the highest one moves into the lowest free slot
        inside their range, until their ids are consecutive again (one micro-batch per decode step)."""
        while True:
            busy = [s for s in self._slots if s.req is not None]
            if not busy or busy[-1].seq_id - busy[0].seq_id + 1 == len(busy):
                return
            top = busy[-1]
            hole = next(s for s in self._slots[busy[0].seq_id :] if s.req is None)
            if not self._move(top, hole):
                return

    def _move(self, src: _Slot, dst: _Slot) -> bool:
        """Move a running sequence to a free slot: its KV, its prompt still to decode and its sampler.
        The old slot keeps a copy of the KV as a cache for later prompts."""
        if not self._copy_kv(src, dst):
            return False
        dst.req, dst.pending, dst.last, dst.generated, dst.sampler = (
            src.req,
            src.pending,
            src.last,
            src.generated,
            src.sampler,
        )
        src.req, src.pending, src.sampler = None, [], None
        return True

    def _make_sampler(self, s: ResolvedSampling, prompt: list[int], grammar: Any = None) -> _Sampler:
        lc = self._lc
        recent = collections.deque(prompt[-PENALTY_LAST_N:], maxlen=PENALTY_LAST_N)
        if s.greedy and grammar is None:
            return _Sampler(None, s.repetition_penalty, recent)
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if grammar is not None:
            lc.llama_sampler_chain_add(chain, grammar)
        if s.greedy:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            if s.top_k > 0:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(s.top_k))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(s.top_p, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(s.temperature))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(s.seed & 0xFFFFFFFF))
        return _Sampler(chain, s.repetition_penalty, recent)

    def _sample(self, sm: _Sampler, i: int) -> int:
        """The next token from batch row ``i`` (its logits are changed in place by the penalty)."""
        lc = self._lc
        row = None
        if sm.penalty != 1.0 or sm.chain is None:
            row = np.ctypeslib.as_array(lc.llama_get_logits_ith(self._ctx, i), shape=(self.n_vocab,))
        if sm.penalty != 1.0:
            assert row is not None
            ids = np.fromiter(set(sm.recent), dtype=np.intp)
            x = row[ids]
            p = np.float32(sm.penalty)
            row[ids] = np.where(x <= 0, x * p, x / p)
        if sm.chain is None:
            assert row is not None
            tid = int(row.argmax())
        else:
            tid = int(lc.llama_sampler_sample(sm.chain, self._ctx, i))
        sm.recent.append(tid)
        return tid

    def _drop_grammar(self, req: _Request) -> None:
        if req.grammar is not None:
            self._lc.llama_sampler_free(req.grammar)
            req.grammar = None

    def _finish(self, slot: _Slot, error: BaseException | None = None) -> None:
        req = slot.req
        if req is None:
            return
        if error is not None:
            req.out.put(error)
            # KV of a failed step is unreliable: drop it
            self._lc.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
            slot.cached = []
        req.out.put(_END)
        if slot.sampler is not None and slot.sampler.chain is not None:
            self._lc.llama_sampler_free(slot.sampler.chain)
        slot.sampler = None
        slot.req, slot.pending = None, []

    def _drop_cancelled(self) -> None:
        """Cancelled and abandoned sequences end here: their slot is free for the next admission."""
        for s in self._slots:
            r = s.req
            if r is not None and (r.abandoned or (r.cancel is not None and r.cancel.cancelled)):
                self._finish(s)

    def _step(self) -> None:
        lc = self._lc
        batch = self._batch
        n = 0
        rows: list[tuple[_Slot, int]] = []
        self._drop_cancelled()
        active = [s for s in self._slots if s.req is not None]
        if not active:
            return  # every sequence was dropped: an empty batch is an error to llama_decode
        # Every generating sequence's last token, then prompt chunks in slot order within n_batch; the
        # batch lists them in slot order, so the first micro-batch takes one token of every sequence.
        budget = self.n_batch - sum(1 for s in active if not s.pending)
        take: dict[int, int] = {}
        for s in active:
            if s.pending and budget > 0:
                take[s.seq_id] = min(len(s.pending), budget)
                budget -= take[s.seq_id]
        for s in active:
            if not s.pending:
                self._put(batch, n, s.last, len(s.cached), s.seq_id, True)
                s.cached.append(s.last)
                rows.append((s, n))
                n += 1
                continue
            chunk = s.pending[: take.get(s.seq_id, 0)]
            done = len(chunk) == len(s.pending)
            for j, t in enumerate(chunk):
                last = done and j == len(chunk) - 1
                self._put(batch, n, t, len(s.cached), s.seq_id, last)
                s.cached.append(t)
                if last:
                    rows.append((s, n))
                n += 1
            s.pending = s.pending[len(chunk) :]
        batch.n_tokens = n
        rc = lc.llama_decode(self._ctx, batch)
        if rc != 0:
            said = " | ".join(QuietLog.recent) or "nothing logged"
            raise BackendError(
                f"llama_decode returned {rc} (no room in the KV cache or a bad batch); llama.cpp: {said}"
            )
        for s, i in rows:
            req = s.req
            assert req is not None
            raw = None
            if req.sampling.logprobs is not None:
                raw = np.ctypeslib.as_array(lc.llama_get_logits_ith(self._ctx, i), shape=(self.n_vocab,))
                raw = raw.astype(np.float64)
            assert s.sampler is not None
            tid = self._sample(s.sampler, i)
            if tid in req.stop_ids or lc.llama_vocab_is_eog(self._vocab, tid):
                self._finish(s)
                continue
            req.out.put(tid if raw is None else _score(raw, tid, req.sampling.logprobs or 0))
            s.generated += 1
            s.last = tid
            if s.generated >= req.sampling.max_tokens or len(s.cached) + 1 >= self.info.n_ctx:
                self._finish(s)

    def _put(self, batch: Any, i: int, tok: int, pos: int, seq: int, logits: bool) -> None:
        batch.token[i] = tok
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = 1 if logits else 0

    def _decode_chunks(self, seq: int, toks: list[int], start: int) -> None:
        for off in range(0, len(toks), self.n_batch):
            chunk = toks[off : off + self.n_batch]
            for j, t in enumerate(chunk):
                self._put(self._batch, j, t, start + off + j, seq, off + j == len(toks) - 1)
            self._batch.n_tokens = len(chunk)
            rc = self._lc.llama_decode(self._ctx, self._batch)
            if rc != 0:
                raise BackendError(f"llama_decode returned {rc}")


def _lse(logits: Any) -> float:
    m = float(logits.max())
    return m + float(np.log(np.exp(logits - m).sum()))


def _logprob(logits: Any, tid: int) -> float:
    return float(logits[tid]) - _lse(logits)


def _score(logits: Any, tid: int, k: int) -> Scored:
    lse = _lse(logits)
    top: tuple[tuple[int, float], ...] = ()
    if k > 0:
        idx = np.argpartition(-logits, k)[:k]
        idx = idx[np.argsort(-logits[idx])]
        top = tuple((int(j), float(logits[j]) - lse) for j in idx)
    return Scored(tid, float(logits[tid]) - lse, top)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
