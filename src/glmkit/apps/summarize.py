"""Summarization of documents of any length.

``extractive`` needs no model: TextRank over jieba-tokenised sentences picks the central sentences, kept in
document order; a long document is ranked window by window and the window winners ranked again, so the
cost stays linear in the document. ``Summarizer`` with a model works within the model's context:

- ``map_reduce`` (default): the document is cut at sentence ends into pieces that fit the context. The
  reduction tree is planned up front: each piece's partial summary gets a length from its share of the
  document and of the final summary (not a fixed one), and consecutive partials are grouped into the
  next level's pieces. Every piece is submitted at once, so the engine's batch stays full (all its
  sequences busy until the queue drains); a group is reduced as soon as its own pieces are done, before
  pieces still waiting. With ``prefilter``, TextRank first keeps the most central sentences, so the model
  reads less. Every call's result can be kept in a ``CallCache`` file (``apps.checkpoint``): a run killed at any point resumes
  from the calls that finished.
- ``refine``: the pieces are read in order, each call updating the running summary with the next piece.

Modes: ``news`` (a one-sentence headline), ``doc`` (key points), ``paper`` (背景 / 方法 / 结果 / 结论).
Length: ``max_chars`` or ``sentences``. The final pass streams."""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from glmkit.apps.checkpoint import CallCache
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
SHARE_FACTOR = 4  # the partials the final call reads add up to about this many times the final length
MIN_PARTIAL = 80  # no partial summary is asked to be shorter (a few sentences)

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
    reused: int = 0  # calls whose result came from the checkpoint of an earlier, interrupted run
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


def _textrank_scores(token_sets: Sequence[set[str]]) -> Any:
    """TextRank centrality of each sentence: shared words over the log lengths as edge weights, PageRank
    with damping 0.85. Numpy: a window of 200 sentences is a few milliseconds."""
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
    return score


def _textrank(token_sets: Sequence[set[str]], n: int) -> list[int]:
    """Indices of the ``n`` most central sentences, in document order."""
    score = _textrank_scores(token_sets)
    order = sorted(range(len(token_sets)), key=lambda i: (-score[i], i))
    return sorted(order[:n])


def prefilter(text: str, keep: float = 0.5) -> str:
    """The most central sentences of ``text`` (TextRank, window by window of 200 sentences), in document
    order, about ``keep`` of its characters: what a model summary is then asked to read."""
    if not 0.05 <= keep <= 1.0:
        raise InvalidRequestError(f"prefilter must be within [0.05, 1], got {keep}", param="prefilter")
    sents = sentences(text)
    if keep >= 1.0 or len(sents) < 4:
        return text
    kept: list[str] = []
    for start in range(0, len(sents), TEXTRANK_WINDOW):
        window = sents[start : start + TEXTRANK_WINDOW]
        score = _textrank_scores([set(tokens(x)) for x in window])
        want = keep * sum(map(len, window))
        chosen: set[int] = set()
        got = 0
        for i in sorted(range(len(window)), key=lambda i: (-score[i], i)):
            if got >= want:
                break
            chosen.add(i)
            got += len(window[i])
        kept.extend(window[i] for i in sorted(chosen))
    return "".join(kept)


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


def _sequences_of(model: ChatModel) -> int | None:
    n = getattr(getattr(model, "engine", None), "n_seq_max", None)
    return n if isinstance(n, int) and n > 0 else None


@dataclass
class _Node:
    """One call of the reduction tree: a piece (level 1) or a group of the level below's partials."""

    level: int
    budget: int  # characters its partial summary may have
    share: float  # the fraction of the document under it
    piece: str = ""
    children: list[int] = field(default_factory=list)
    parent: int | None = None
    left: int = 0  # children not done yet
    out: str | None = None


def _context_of(model: ChatModel) -> int | None:
    engine = getattr(model, "engine", None)
    info = getattr(engine, "info", None)
    n = getattr(info, "n_ctx", None)
    return n if isinstance(n, int) else None


class Summarizer:
    """Summaries by a chat model, within its context. ``concurrency`` calls are in flight at once: by
    default as many as the engine decodes together (its ``n_seq_max``), 4 for a remote model. ``cache``
    keeps every finished call (see ``CallCache``); ``prefilter`` (0.05–1) is the share of characters
    TextRank keeps before the model reads the document."""

    def __init__(
        self,
        model: ChatModel,
        piece_chars: int | None = None,
        concurrency: int | None = None,
        cache: CallCache | None = None,
        prefilter: float | None = None,
    ) -> None:
        self.model = model
        n_ctx = _context_of(model)
        fit = PIECE_CHARS if n_ctx is None else max(200, min(PIECE_CHARS, n_ctx - 900))
        self.piece_chars = piece_chars or fit
        if self.piece_chars < 100:
            raise InvalidRequestError("piece_chars must be at least 100", param="piece_chars")
        if concurrency is None:
            concurrency = _sequences_of(model) or 4
        if not 1 <= concurrency <= 64:
            raise InvalidRequestError("concurrency must be within [1, 64]", param="concurrency")
        if prefilter is not None and not 0.05 <= prefilter <= 1.0:
            raise InvalidRequestError(f"prefilter must be within [0.05, 1], got {prefilter}", param="prefilter")
        self.concurrency = concurrency
        self.cache = cache
        self.prefilter = prefilter
        self._lock = threading.Lock()
        # the longest partial summary: a quarter of its piece (a third for tiny pieces, so that at least two
        # fit in the next piece); its token budget holds that many characters and a little more (a Chinese
        # character is at most one token here), so a rambling model is cut off
        self.partial_chars = max(min(MIN_PARTIAL, self.piece_chars // 3), min(400, self.piece_chars // 4))
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
        self._cancel = cancel if cancel is not None else CancelToken()  # also stopped by Ctrl-C
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
        read = text
        if self.prefilter is not None and self.prefilter < 1.0 and len(text) > self.piece_chars:
            read = prefilter(text, self.prefilter)
        parts = pieces(read, self.piece_chars)
        summary.pieces = len(parts)
        if strategy == "refine":
            return summary, self._refine(parts, mode, length, budget, language, summary, progress, guard)
        final_chars = n if sentences is None else sentences * 60
        top = parts[0] if len(parts) == 1 else self._map_reduce(parts, final_chars, language, summary, progress)
        summary.partials = [top]
        if progress is not None:
            progress(0, 1, "final")
        return summary, self._final(
            lambda t: self._messages(t, mode, length, language),
            top,
            budget,
            summary,
            f"不超过{self.partial_chars}个字",
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

    def _budget(self, share: float, final_chars: int) -> int:
        """A partial summary's length: its share of the final summary, times SHARE_FACTOR, within
        [MIN_PARTIAL, partial_chars]."""
        lo = min(MIN_PARTIAL, self.partial_chars)
        return max(lo, min(self.partial_chars, round(SHARE_FACTOR * final_chars * share)))

    def _plan(self, parts: list[str], final_chars: int) -> tuple[list[_Node], list[int]]:
        """The reduction tree: its nodes, and the ones whose partials the final call reads (together at
        most ``piece_chars``)."""
        total = sum(map(len, parts)) or 1
        nodes = [_Node(1, self._budget(len(p) / total, final_chars), len(p) / total, piece=p) for p in parts]
        level = list(range(len(nodes)))

        def cost(ids: Sequence[int]) -> int:
            return sum(nodes[i].budget + 1 for i in ids)

        def fill(ids: Sequence[int]) -> None:
            """Partials the final call reads directly may share its whole piece: a short document keeps
            the old, longer partials instead of squeezing them (or growing a level) for the share rule."""
            room = min(self.partial_chars, self.piece_chars // max(1, len(ids)) - 1)
            for i in ids:
                nodes[i].budget = room

        if len(level) * (min(MIN_PARTIAL, self.partial_chars) + 1) <= self.piece_chars:
            fill(level)

        depth = 1
        while len(level) > 1 and cost(level) > self.piece_chars:
            depth += 1
            k = max(2, math.ceil(cost(level) / self.piece_chars))
            while True:  # as few groups as fit, of nearly equal size (partials <= piece/3: >= 2 fit one)
                size = math.ceil(len(level) / k)
                groups = [level[j : j + size] for j in range(0, len(level), size)]
                if all(cost(g) <= self.piece_chars for g in groups):
                    break
                k += 1
            nxt = []
            for g in groups:
                share = sum(nodes[i].share for i in g)
                nodes.append(_Node(depth, self._budget(share, final_chars), share, children=g, left=len(g)))
                for i in g:
                    nodes[i].parent = len(nodes) - 1
                nxt.append(len(nodes) - 1)
            level = nxt
        if depth > 1:
            fill(level)
        return nodes, level

    def _map_reduce(
        self, parts: list[str], final_chars: int, language: str | None, s: Summary, progress: Progress | None
    ) -> str:
        """Run the tree: every piece queued at once for ``concurrency`` workers, so the engine's batch stays
        full; a group is queued as soon as its last child is done and goes before pieces still waiting
        (deeper levels first). Returns the text of the final call."""
        nodes, top = self._plan(parts, final_chars)
        s.levels = max(n.level for n in nodes)
        cv = threading.Condition()
        ready = [(-1, i) for i, n in enumerate(nodes) if n.level == 1]
        heapq.heapify(ready)
        failed: list[BaseException] = []
        done = 0
        total = len(nodes)
        if progress is not None:
            progress(0, total, "map")

        def work() -> None:
            nonlocal done
            while True:
                with cv:
                    while not ready and not failed and done < total:
                        cv.wait()
                    if failed or not ready or (self._cancel is not None and self._cancel.cancelled):
                        return
                    _, nid = heapq.heappop(ready)
                node = nodes[nid]
                text = node.piece or "\n".join(nodes[c].out or "" for c in node.children)
                try:
                    out = self._partial(text, node.budget, language, s)
                except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                    with cv:
                        failed.append(e)
                        cv.notify_all()
                    return
                with cv:
                    node.out = out
                    done += 1
                    if node.parent is not None:
                        parent = nodes[node.parent]
                        parent.left -= 1
                        if parent.left == 0:
                            heapq.heappush(ready, (-parent.level, node.parent))
                    if progress is not None:
                        progress(done, total, "map" if node.level == 1 else f"reduce {node.level - 1}")
                    cv.notify_all()

        workers = [
            threading.Thread(target=work, name=f"glmkit-summarize-{i}", daemon=True)
            for i in range(min(self.concurrency, len(parts)))
        ]
        for w in workers:
            w.start()
        try:
            with cv:
                while done < total and not failed:
                    cv.wait(0.5)  # short waits: Ctrl-C reaches this thread
        except BaseException:
            if self._cancel is not None:
                self._cancel.cancel()
            raise
        finally:
            for w in workers:
                w.join()
        if failed:
            raise failed[0]
        return "\n".join(nodes[i].out or "" for i in top)

    def _partial(self, text: str, budget: int, language: str | None, s: Summary) -> str:
        """One node's partial summary, from the checkpoint when an earlier run finished it."""
        length = f"不超过{budget}个字"
        key = CallCache.key(getattr(self.model, "name", ""), "partial", text, budget, language)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            with self._lock:
                s.reused += 1
            return hit
        out = self._once(text, length, language, s, max_tokens=budget + 32)
        if self.cache is not None:
            self.cache.put(key, out)
        return out

    def _once(
        self, text: str, length: str, language: str | None, s: Summary, max_tokens: int | None = None
    ) -> str:
        """One map call; a piece whose tokens overflow the context (dense symbols, rare characters) is
        halved and both halves summarised."""
        max_tokens = max_tokens or self.partial_chars + 32
        params = SamplingParams(temperature=0, max_tokens=max_tokens)
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
                self._once(text[:half], length, language, s, max_tokens)
                + "\n"
                + self._once(text[half:], length, language, s, max_tokens)
            )
        self._check_cancel()  # a call cut short by a cancel is not a result (nor kept in the checkpoint)
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
