"""The llama.cpp engine's scheduler, on the tiny random ChatGLM3 GGUF (milliseconds a step): what goes into
each ``llama_decode`` call, which slot a request takes, and that moving and copying KV leaves every
sequence's tokens as they are decoded alone.

A spy stands in for the llama.cpp module: it records every batch (seq id, position per token) and can
hold the worker after a decode, so a test decides what arrives between two steps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from chatglm3_tiny import TinyChatGLM3
from glmkit.runtime.backends.llamacpp import LlamaEngine
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from glmkit.types import CancelToken, Message, ResolvedSampling, SamplingParams

FMT = ChatGLM3Format()


def greedy(max_tokens: int, seed: int | None = None) -> ResolvedSampling:
    return SamplingParams(temperature=0, max_tokens=max_tokens, seed=seed, repetition_penalty=1.0).resolved()


class Spy:
    """The llama.cpp module with ``llama_decode`` recorded (and, while ``hold`` is on, the worker stopped
    after each decode until ``step()``)."""

    def __init__(self, lc: Any) -> None:
        self._lc = lc
        self.batches: list[list[tuple[int, int]]] = []  # per call: (seq id, pos) per token
        self.hold = False
        self._decoded = threading.Semaphore(0)
        self._go = threading.Semaphore(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lc, name)

    def llama_decode(self, ctx: Any, batch: Any) -> int:
        self.batches.append([(batch.seq_id[i][0], batch.pos[i]) for i in range(batch.n_tokens)])
        rc: int = self._lc.llama_decode(ctx, batch)
        if self.hold:
            self._decoded.release()
            assert self._go.acquire(timeout=30), "the test never let the worker go on"
        return rc

    def wait_decode(self) -> None:
        assert self._decoded.acquire(timeout=30), "no decode happened"

    def step(self) -> None:
        self._go.release()

    def release(self) -> None:
        self.hold = False
        self._go.release(2)


@pytest.fixture(scope="module")
def tiny_gguf(chatglm3_tiny: TinyChatGLM3) -> Any:
    return chatglm3_tiny.gguf


@pytest.fixture
def engine(tiny_gguf: Any) -> Iterator[LlamaEngine]:
    e = LlamaEngine(tiny_gguf, n_threads=1, n_seq_max=4, n_ctx=256)
    e._lc = s = Spy(e._lc)
    yield e
    s.release()  # a failed test may have left the worker held
    e.close()


def spy(engine: LlamaEngine) -> Spy:
    assert isinstance(engine._lc, Spy)
    return engine._lc


def prompt(engine: LlamaEngine, text: str, system: str = "你是一个乐于助人的助手，请用简短的中文回答问题。") -> list[int]:
    return FMT.render_ids([Message("system", system), Message("user", text)], [], engine.tokenizer)


def alone(engine: LlamaEngine, ids: list[int], n: int) -> list[int]:
    """The greedy reply decoded alone with nothing cached (an explicit seed turns prefix reuse off)."""
    return [int(t) for t in engine.generate(ids, greedy(n, seed=1), FMT.stop_ids(engine.tokenizer))]


def seqs(batch: list[tuple[int, int]]) -> list[int]:
    return [s for s, _ in batch]


def start(
    engine: LlamaEngine, ids: list[int], n: int, out: list[int], cancel: CancelToken | None = None
) -> threading.Thread:
    """Read a greedy reply into ``out`` on a thread. A generator starts lazily, so while the worker is held
    in a step this returns once the request is queued for the next one."""
    held = spy(engine).hold and any(sl.req is not None for sl in engine._slots)
    queued = engine.stats()["waiting"]
    gen = engine.generate(ids, greedy(n), FMT.stop_ids(engine.tokenizer), cancel)

    def read() -> None:
        for x in gen:
            out.append(int(x))
            if cancel is not None and len(out) == 2:
                cancel.cancel()

    t = threading.Thread(target=read)
    t.start()
    if held:
        deadline = time.monotonic() + 30
        while engine.stats()["waiting"] <= queued:
            assert time.monotonic() < deadline, "the request was never queued"
            time.sleep(0.001)
    return t


def finish(engine: LlamaEngine, threads: list[threading.Thread]) -> None:
    spy(engine).release()
    for t in threads:
        t.join(30)
        assert not t.is_alive()


def test_a_new_prompt_fills_a_free_slot_and_joins_the_running_decodes_in_one_call(engine: LlamaEngine) -> None:
    """A, B and C decode; B ends and D arrives: D takes B's slot (between A and C), and its whole prompt
    goes into the same llama_decode call as A's and C's next tokens, listed in slot order, so llama.cpp
    puts one token of each of the three into its first micro-batch."""
    s = spy(engine)
    texts = ["你好，我是人工智能助手。", "Hello, how are you today?", "今天天气怎么样？", "The quick brown fox jumps."]
    pa, pb, pc, pd = (engine.tokenizer.encode(t)[1:] for t in texts)
    assert len({pa[0], pb[0], pc[0], pd[0]}) == 4  # no cached prefix to share
    out: list[list[int]] = [[], [], [], []]
    s.hold = True
    threads = [start(engine, pa, 16, out[0])]
    s.wait_decode()  # 1: A's prompt
    threads += [start(engine, pb, 3, out[1]), start(engine, pc, 16, out[2])]
    for _ in range(3):  # 2: A's token and B's and C's prompts; 3, 4: B's second and third (last) tokens
        s.step()
        s.wait_decode()
    threads.append(start(engine, pd, 16, out[3]))
    s.step()
    s.wait_decode()  # 5
    finish(engine, threads)
    assert seqs(s.batches[1]) == [0] + [1] * len(pb) + [2] * len(pc)
    assert seqs(s.batches[3]) == [0, 1, 2]
    fifth = s.batches[4]
    assert seqs(fifth) == [0] + [1] * len(pd) + [2]
    assert [p for q, p in fifth if q == 1] == list(range(len(pd)))
    assert out == [alone(engine, p, n) for p, n in ((pa, 16), (pb, 3), (pc, 16), (pd, 16))]


def test_a_prompt_reuses_another_slots_cached_prefix(engine: LlamaEngine) -> None:
    """The system prompt decoded for A is copied into B's slot: B's batch starts where they differ."""
    s = spy(engine)
    pa, pb = prompt(engine, "你好"), prompt(engine, "请帮我查一下上海明天的天气。")
    shared = next(i for i, (x, y) in enumerate(zip(pa, pb, strict=False)) if x != y)
    assert shared > 10
    got_a: list[int] = []
    got_b: list[int] = []
    s.hold = True
    threads = [start(engine, pa, 16, got_a)]
    s.wait_decode()
    threads.append(start(engine, pb, 16, got_b))
    s.step()
    s.wait_decode()
    finish(engine, threads)
    second = s.batches[1]
    assert seqs(second) == [0] + [1] * (len(pb) - shared)
    assert [p for q, p in second if q == 1] == list(range(shared, len(pb)))
    assert got_b == alone(engine, pb, 16) and got_a == alone(engine, pa, 16)


def test_a_finished_sequences_slot_is_filled_by_moving_the_highest_one_down(engine: LlamaEngine) -> None:
    """Three decode together; when the middle one ends, the last moves into its slot, so every later step
    is one run of consecutive sequence ids (one micro-batch), and each reply is what it is alone."""
    s = spy(engine)
    ps = [prompt(engine, q) for q in ("你好", "今天天气怎么样？", "我们一起学习机器学习。")]
    lengths = [24, 4, 24]
    out: list[list[int]] = [[], [], []]
    s.hold = True
    threads = [start(engine, ps[0], lengths[0], out[0])]
    s.wait_decode()
    threads += [start(engine, ps[k], lengths[k], out[k]) for k in (1, 2)]
    finish(engine, threads)
    assert out == [alone(engine, p, n) for p, n in zip(ps, lengths, strict=True)]
    assert [len(o) for o in out] == lengths
    assert any(sorted(set(seqs(b))) == [0, 1, 2] for b in s.batches)
    after = [b for b in s.batches if len(set(seqs(b))) == 2]
    assert after and all(sorted(set(seqs(b))) == [0, 1] for b in after), after


def test_cancelling_a_middle_sequence_frees_its_slot_and_the_rest_go_on(engine: LlamaEngine) -> None:
    s = spy(engine)
    ps = [prompt(engine, q) for q in ("你好", "今天天气怎么样？", "我们一起学习机器学习。")]
    out: list[list[int]] = [[], [], []]
    s.hold = True
    threads = [start(engine, ps[0], 30, out[0])]
    s.wait_decode()
    threads += [start(engine, ps[1], 30, out[1], CancelToken()), start(engine, ps[2], 30, out[2])]
    finish(engine, threads)
    assert 2 <= len(out[1]) < 30
    assert out[0] == alone(engine, ps[0], 30) and out[2] == alone(engine, ps[2], 30)
    assert engine.stats()["active"] == 0
    after = [b for b in s.batches if len(set(seqs(b))) == 2]
    assert after and all(sorted(set(seqs(b))) == [0, 1] for b in after), after


def test_the_engines_penalty_and_samplers_pick_what_llama_cpps_own_chain_picks(engine: LlamaEngine) -> None:
    """The repetition penalty is applied to llama.cpp's logits row and plain greedy is an argmax (both far
    cheaper than llama.cpp's penalties sampler); every pick equals that of llama.cpp's own chain of
    penalties then greedy, or penalties then top-k/top-p/temperature/dist, on the same row."""
    lc = engine._lc
    prompts = [prompt(engine, q) + engine.tokenizer.encode(a) for q, a in (("你好", "你好你好你好"), ("天气", "晴晴晴"))]
    cases = [
        SamplingParams(temperature=t, repetition_penalty=p, seed=seed, top_k=k, top_p=tp).resolved()
        for p in (1.0, 1.1, 2.0)
        for t, k, tp, seed in ((0.0, 40, 0.8, None), (0.9, 40, 0.9, 3), (1.5, 0, 0.95, 7), (1.0, 5, 1.0, 11))
    ]

    def reference(s: ResolvedSampling, ids: list[int]) -> Any:
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        pen = lc.llama_sampler_init_penalties(engine.n_vocab, 64, s.repetition_penalty, 0.0, 0.0)
        for t in ids[-64:]:
            lc.llama_sampler_accept(pen, t)
        lc.llama_sampler_chain_add(chain, pen)
        if s.greedy:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            if s.top_k > 0:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(s.top_k))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(s.top_p, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(s.temperature))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(s.seed & 0xFFFFFFFF))
        return chain

    def run() -> list[tuple[int, int, int]]:
        picks = []
        for ids in prompts:
            for s in cases:
                engine._decode_chunks(engine._reset(0), ids, 0)
                plain = int(np.ctypeslib.as_array(lc.llama_get_logits_ith(engine._ctx, -1), shape=(engine.n_vocab,)).argmax())
                ref = reference(s, ids)
                want = int(lc.llama_sampler_sample(ref, engine._ctx, -1))  # copies the row, leaves it as is
                lc.llama_sampler_free(ref)
                sm = engine._make_sampler(s, ids)
                got = engine._sample(sm, -1)
                if sm.chain is not None:
                    lc.llama_sampler_free(sm.chain)
                picks.append((want, got, plain))
        return picks

    picks = engine._on_worker("test", run)
    assert [w for w, _, _ in picks] == [g for _, g, _ in picks]
    assert any(w != plain for w, _, plain in picks)  # the penalty changed some pick: the check has teeth
