"""Summarization of documents of any length.

``extractive`` needs no model: TextRank over jieba-tokenised sentences picks the central sentences, kept in
document order; a long document is ranked window by window and the window winners ranked again, so the
cost stays linear in the document. ``Summarizer`` with a model works within the model's context:

- ``map_reduce`` (default): the document is cut at sentence ends into pieces that fit the context; each
  piece is summarised (several at once — the engine decodes them in one batch), then the partial
  summaries are cut and summarised again, level by level, until one call can write the final summary.
- ``refine``: the pieces are read in order, each call updating the running summary with the next piece.

Modes: ``news`` (a one-sentence headline), ``doc`` (key points), ``paper`` (背景 / 方法 / 结果 / 结论).
Length: ``max_chars`` or ``sentences``. The final pass streams."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from glmkit.errors import CancelledError, ContextOverflowError, InvalidRequestError, PayloadTooLargeError
from glmkit.kb.splitter import sentences
from glmkit.kb.text import tokens
from glmkit.runtime.chat import collect
from glmkit.runtime.protocol import ChatModel
from glmkit.types import CancelToken, Delta, FinishDelta, Message, SamplingParams, TextDelta, UsageDelta

Mode = Literal["news", "doc", "paper"]
Strategy = Literal["map_reduce", "refine"]
MODES = ("news", "doc", "paper")
MAX_INPUT_CHARS = 20_000_000  # extractive: ~20 MB of Chinese text
MAX_LLM_INPUT_CHARS = 1_000_000  # model summaries: beyond this the number of model calls gets silly
PIECE_CHARS = 1500  # the most one map call reads; less when the context is small
TEXTRANK_WINDOW = 200  # sentences ranked together; longer documents are ranked window by window
Progress = Callable[[int, int, str], None]

INSTRUCTIONS: dict[str, str] = {
    "news": "用一句话为下面的内容写一个新闻标题式的概括，{length}：",
    "doc": "用分条列出的要点概括下面的内容，{length}：",
    "paper": "按“背景、方法、结果、结论”四个部分概括下面的论文内容，{length}：",
}
REFINE = (
    "下面是前文的摘要和接下来的一段原文。把新内容中的要点并入摘要，写出更新后的摘要，{length}。\n\n"
    "【前文摘要】\n{summary}\n\n【接下来的原文】\n{text}"
)
DEFAULT_CHARS = {"news": 40, "doc": 300, "paper": 400}
SYSTEM = "你是一个准确、简洁的摘要助手，只根据给出的内容写摘要，不编造原文没有的信息。"


class LengthGuard:
    """Holds the streamed final summary to the length asked for. Text is released a sentence (or clause
    ending in ；/newline) at a time; once ``max_chars`` is reached at such a boundary, or the next one would
    pass ``max_chars`` + 20%, or the ``sentences``-th sentence has ended, the rest is dropped. So a summary
    ends at a sentence end, not mid-sentence (unless its first sentence alone is too long). A small model told
    "不超过300个字" writes 600 if its token budget allows."""

    def __init__(self, max_chars: int, sentences: int | None) -> None:
        self.soft = max_chars if sentences is None else 10**9
        self.hard = max_chars + max(10, max_chars // 5) if sentences is None else sentences * 150
        self.sentences = sentences
        self.ends = 0
        self.emitted = ""
        self.pending = ""
        self.done = False
        self.dropped = False

    def feed(self, piece: str) -> str:
        """The text to emit now (possibly empty)."""
        out = ""
        for ch in piece:
            if self.done:
                self.dropped = self.dropped or not ch.isspace()
                continue
            if not (self.emitted + self.pending).strip() and ch.isspace():
                continue  # leading newlines are not part of the length
            prev = (self.emitted + self.pending)[-1:]
            self.pending += ch
            sentence_end = ch in "。！？" or (ch.isspace() and prev in ".!?")
            boundary = sentence_end or ch in "；;\n"
            too_long = len((self.emitted + self.pending).rstrip()) > self.hard
            if too_long:
                out += self._stop()
            elif boundary:
                self.ends += sentence_end
                out += self.pending
                self.emitted += self.pending
                self.pending = ""
                if len(self.emitted.rstrip()) >= self.soft or (
                    self.sentences is not None and self.ends >= self.sentences
                ):
                    self.done = True
        return out

    def _stop(self) -> str:
        """Past the hard limit: drop the unfinished sentence (or, with nothing emitted yet, cut it)."""
        self.done = self.dropped = True
        if self.emitted.strip():
            self.pending = ""
            return ""
        cut = self.pending[: self.hard]
        self.emitted, self.pending = cut, ""
        return cut

    def flush(self) -> str:
        """At the end of the reply: the last, unterminated sentence, if it is still wanted."""
        if self.done or not self.pending:
            return ""
        tail, self.pending = self.pending, ""
        self.emitted += tail
        return tail


@dataclass
class Summary:
    text: str = ""
    mode: str = "doc"
    method: str = "llm"
    strategy: str = "map_reduce"
    input_chars: int = 0
    pieces: int = 0
    levels: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    trimmed: bool = False  # the model wrote past the length asked for; the excess was not kept
    partials: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "partials"}


def check_text(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidRequestError("the document is empty: nothing to summarize", param="text")
    if "\x00" in text:
        raise InvalidRequestError("the document contains NUL bytes: it looks binary, not text", param="text")
    if len(text) > limit:
        raise PayloadTooLargeError(
            f"the document has {len(text):,} characters; the limit here is {limit:,}"
            + (
                " (model summaries of longer texts take too many model calls: use the extractive mode, "
                "or split the document)"
                if limit == MAX_LLM_INPUT_CHARS
                else ""
            )
        )
    return text


def _textrank(token_sets: Sequence[set[str]], n: int) -> list[int]:
    """Indices of the ``n`` most central sentences (TextRank: shared words over the log lengths as edge
    weights, PageRank with damping 0.85), in document order. Numpy: a window of 200 sentences is a few
    milliseconds."""
    import numpy as np

    size = len(token_sets)
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, toks in enumerate(token_sets):
        for t in toks:
            rows.append(i)
            cols.append(vocab.setdefault(t, len(vocab)))
    m = np.zeros((size, max(1, len(vocab))), dtype=np.float32)
    m[rows, cols] = 1.0
    common = m @ m.T
    lengths = np.array([len(t) for t in token_sets], dtype=np.float64)
    logs = np.log(np.maximum(lengths, 1.0))
    denom = logs[:, None] + logs[None, :]
    usable = lengths > 1
    w = np.where(usable[:, None] & usable[None, :] & (denom > 0), common / np.where(denom > 0, denom, 1), 0.0)
    np.fill_diagonal(w, 0.0)
    out_sum = w.sum(axis=1)
    out_sum[out_sum == 0] = 1.0
    transition = w / out_sum[:, None]
    score = np.ones(size)
    for _ in range(30):
        score = 0.15 + 0.85 * (transition.T @ score)
    order = sorted(range(size), key=lambda i: (-score[i], i))
    return sorted(order[:n])


def extractive(text: str, n: int = 3) -> str:
    """TextRank: the top ``n`` sentences in document order. Long documents: the best few of each
    window of sentences go on to a final round, so 10 MB of text takes ~20 s (mostly jieba), not hours."""
    if not 1 <= n <= 100:
        raise InvalidRequestError(f"sentences must be within [1, 100], got {n}", param="sentences")
    sents = sentences(check_text(text))
    if len(sents) <= n:
        return "".join(sents)
    toks = [set(tokens(s)) for s in sents]
    idx = list(range(len(sents)))
    while len(idx) > TEXTRANK_WINDOW:
        keep = max(n, 3)
        nxt: list[int] = []
        for start in range(0, len(idx), TEXTRANK_WINDOW):
            window = idx[start : start + TEXTRANK_WINDOW]
            nxt.extend(window[i] for i in _textrank([toks[j] for j in window], keep))
        idx = nxt
    return "".join(sents[idx[i]] for i in _textrank([toks[j] for j in idx], n))


def lead(text: str, n: int = 1) -> str:
    """The lead-sentence baseline: the first ``n`` sentences."""
    return "".join(sentences(check_text(text))[:n])


def pieces(text: str, size: int) -> list[str]:
    """Cut at sentence ends into pieces of at most ``size`` characters (a run-on sentence is cut hard)."""
    out: list[str] = []
    cur = ""
    for s in sentences(text):
        while len(s) > size:
            if cur:
                out.append(cur)
                cur = ""
            out.append(s[:size])
            s = s[size:]
        if cur and len(cur) + len(s) > size:
            out.append(cur)
            cur = ""
        cur += s
    if cur:
        out.append(cur)
    return out


def _context_of(model: ChatModel) -> int | None:
    engine = getattr(model, "engine", None)
    info = getattr(engine, "info", None)
    n = getattr(info, "n_ctx", None)
    return n if isinstance(n, int) else None


class Summarizer:
    """Summaries by a chat model, within its context. ``concurrency`` map calls run at once (the
    llama.cpp engine decodes them together in one batch)."""

    def __init__(self, model: ChatModel, piece_chars: int | None = None, concurrency: int = 4) -> None:
        self.model = model
        n_ctx = _context_of(model)
        fit = PIECE_CHARS if n_ctx is None else max(200, min(PIECE_CHARS, n_ctx - 900))
        self.piece_chars = piece_chars or fit
        if self.piece_chars < 100:
            raise InvalidRequestError("piece_chars must be at least 100", param="piece_chars")
        if not 1 <= concurrency <= 32:
            raise InvalidRequestError("concurrency must be within [1, 32]", param="concurrency")
        self.concurrency = concurrency
        self._lock = threading.Lock()
        # a partial summary: a quarter of its piece; its token budget holds that many characters and a
        # little more (a Chinese character is at most one token here), so a rambling model is cut off
        self.partial_chars = max(80, min(400, self.piece_chars // 4))
        self._cancel: CancelToken | None = None

    def stream(
        self,
        text: str,
        *,
        mode: Mode = "doc",
        max_chars: int | None = None,
        sentences: int | None = None,
        language: str | None = None,
        strategy: Strategy = "map_reduce",
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> tuple[Summary, Iterator[Delta]]:
        """Summarise ``text``: the map and reduce calls run here; the final call streams from the
        returned iterator (``Summary.text`` is complete once it is exhausted). ``cancel`` stops the work
        at the next token (CancelledError)."""
        self._cancel = cancel
        if mode not in INSTRUCTIONS:
            raise InvalidRequestError(f"mode must be news, doc or paper, not {mode!r}", param="mode")
        if strategy not in ("map_reduce", "refine"):
            raise InvalidRequestError(
                f"strategy must be map_reduce or refine, not {strategy!r}", param="strategy"
            )
        if language is not None and (not language.strip() or len(language) > 40):
            raise InvalidRequestError(
                "language must be a short name such as English or 中文", param="language"
            )
        text = check_text(text, MAX_LLM_INPUT_CHARS)
        n = max_chars or DEFAULT_CHARS[mode]
        if not 5 <= n <= 5000:
            raise InvalidRequestError(f"max_chars must be within [5, 5000], got {n}", param="max_chars")
        if sentences is not None and not 1 <= sentences <= 50:
            raise InvalidRequestError(f"sentences must be within [1, 50], got {sentences}", param="sentences")
        length = f"用{sentences}句话" if sentences else f"不超过{n}个字"
        budget = max(64, (sentences or 0) * 80, n * 2)
        summary = Summary(mode=mode, input_chars=len(text), strategy=strategy)
        guard = LengthGuard(n, sentences)
        parts = pieces(text, self.piece_chars)
        summary.pieces = len(parts)
        partial_len = f"不超过{self.partial_chars}个字"
        if strategy == "refine":
            return summary, self._refine(parts, mode, length, budget, language, summary, progress, guard)
        while len(parts) > 1 or len(parts[0]) > self.piece_chars:
            summary.levels += 1
            done = self._map(parts, partial_len, language, summary, progress)
            nxt = pieces("\n".join(done), self.piece_chars)
            if len(nxt) >= len(done) and len(done) > 1:  # no progress: shorten harder
                nxt = ["\n".join(d[: self.piece_chars // len(done)] for d in done)]
            parts = nxt
        summary.partials = parts
        if progress is not None:
            progress(0, 1, "final")
        return summary, self._final(
            lambda t: self._messages(t, mode, length, language),
            parts[0],
            budget,
            summary,
            partial_len,
            language,
            guard,
        )

    def summarize(self, text: str, **kw: object) -> Summary:
        summary, deltas = self.stream(text, **kw)  # type: ignore[arg-type]
        for _ in deltas:
            pass
        return summary

    # -- the calls ----------------------------------------------------------------------------------------
    def _messages(self, text: str, mode: str, length: str, language: str | None) -> list[Message]:
        instruction = INSTRUCTIONS[mode].format(length=length)
        if language:
            instruction = f"请用{language}写摘要。" + instruction
        return [Message("system", SYSTEM), Message("user", f"{instruction}\n\n{text}")]

    def _map(
        self, parts: list[str], length: str, language: str | None, s: Summary, progress: Progress | None
    ) -> list[str]:
        done = 0

        def one(p: str) -> str:
            nonlocal done
            out = self._once(p, length, language, s)
            with self._lock:
                done += 1
                if progress is not None:
                    progress(done, len(parts), f"level {s.levels}")
            return out

        if progress is not None:
            progress(0, len(parts), f"level {s.levels}")
        if self.concurrency == 1 or len(parts) == 1:
            return [one(p) for p in parts]
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="glmkit-summarize") as pool:
            return list(pool.map(one, parts))

    def _once(self, text: str, length: str, language: str | None, s: Summary) -> str:
        """One map call; a piece whose tokens overflow the context (dense symbols, rare characters) is
        halved and both halves summarised."""
        params = SamplingParams(temperature=0, max_tokens=self.partial_chars + 32)
        self._check_cancel()
        try:
            r = collect(
                self.model.stream(
                    self._messages(text, "doc", length, language), params=params, cancel=self._cancel
                )
            )
        except ContextOverflowError:
            if len(text) < 200:
                raise
            half = len(text) // 2
            return (
                self._once(text[:half], length, language, s)
                + "\n"
                + self._once(text[half:], length, language, s)
            )
        with self._lock:
            s.calls += 1
            s.prompt_tokens += r.prompt_tokens
            s.completion_tokens += r.completion_tokens
        return r.text.strip()

    def _refine(
        self,
        parts: list[str],
        mode: str,
        length: str,
        budget: int,
        language: str | None,
        s: Summary,
        progress: Progress | None,
        guard: LengthGuard,
    ) -> Iterator[Delta]:
        running = ""
        lang = f"请用{language}写摘要。" if language else ""
        for i, p in enumerate(parts):
            if progress is not None:
                progress(i, len(parts), "refine")

            def make(t: str, first: bool = i == 0, carried: str = running) -> list[Message]:
                if first:
                    return self._messages(t, mode, length, language)
                prompt = REFINE.format(length=length, summary=carried, text=t)
                return [Message("system", SYSTEM), Message("user", lang + prompt)]

            msgs = make(p)
            if i < len(parts) - 1:
                self._check_cancel()
                params = SamplingParams(temperature=0, max_tokens=budget)
                r = collect(self.model.stream(msgs, params=params, cancel=self._cancel))
                s.calls += 1
                s.prompt_tokens += r.prompt_tokens
                s.completion_tokens += r.completion_tokens
                running = r.text.strip()[: self.piece_chars // 2]
                s.partials = [running]
            else:
                yield from self._final(make, p, budget, s, length, language, guard)

    def _final(
        self,
        make: Callable[[str], list[Message]],
        text: str,
        budget: int,
        s: Summary,
        length: str,
        language: str | None,
        guard: LengthGuard,
    ) -> Iterator[Delta]:
        """The streamed last call. Should its prompt not fit the context after all (token-dense text), its
        input is summarised in two halves first and the call made again. Text past the requested length
        is dropped (``guard``); the call still runs to its end so its token counts are reported."""
        params = SamplingParams(temperature=0, max_tokens=budget)
        while True:
            self._check_cancel()
            try:  # the context check happens on the call or before the first delta, by backend
                deltas = self.model.stream(make(text), params=params, cancel=self._cancel)
                first = next(deltas)
            except ContextOverflowError:
                if len(text) < 200:
                    raise
                half = len(text) // 2
                text = (
                    self._once(text[:half], length, language, s)
                    + "\n"
                    + self._once(text[half:], length, language, s)
                )
                continue
            except StopIteration:
                return
            break
        s.calls += 1
        finished = False
        for d in itertools.chain([first], deltas):
            if isinstance(d, TextDelta):
                keep = guard.feed(d.text)
                s.trimmed = guard.dropped
                if not keep:
                    continue
                s.text += keep
                d = TextDelta(keep)
            elif isinstance(d, UsageDelta):
                s.prompt_tokens += d.prompt_tokens
                s.completion_tokens += d.completion_tokens
            elif isinstance(d, FinishDelta):
                if tail := guard.flush():
                    s.text += tail
                    yield TextDelta(tail)
                s.text = s.text.strip()
                finished = True
            yield d
        if not finished and (tail := guard.flush()):
            s.text = (s.text + tail).strip()
            yield TextDelta(tail)

    def _check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.cancelled:
            raise CancelledError("the summary was cancelled")
