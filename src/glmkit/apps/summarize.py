"""Summarization of documents of any length.

``extractive`` needs no model: TextRank over jieba-tokenised sentences picks the central sentences, kept in
document order. ``summarize`` with a model maps the document in pieces that fit the context (each piece
summarised in the chosen mode), then reduces the partial summaries — again in pieces, level by level —
until one summary remains; the final pass can stream. Modes: ``news`` (a one-sentence headline), ``doc``
(key points), ``paper`` (背景 / 方法 / 结果 / 结论)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from glmkit.errors import InvalidRequestError
from glmkit.kb.splitter import sentences
from glmkit.kb.text import tokens
from glmkit.runtime.chat import collect
from glmkit.runtime.protocol import ChatModel
from glmkit.types import Delta, FinishDelta, Message, SamplingParams, TextDelta, UsageDelta

Mode = Literal["news", "doc", "paper"]
MAX_INPUT_CHARS = 5_000_000
PIECE_CHARS = 1500  # one map call reads this much (fits a 2k-token context with the instruction)

INSTRUCTIONS: dict[str, str] = {
    "news": "用一句话为下面的内容写一个新闻标题式的概括，不超过{n}个字：",
    "doc": "用{n}字以内、分条列出的要点概括下面的内容：",
    "paper": "按“背景、方法、结果、结论”四个部分概括下面的论文内容，总共不超过{n}字：",
}
DEFAULT_CHARS = {"news": 40, "doc": 300, "paper": 400}


@dataclass
class Summary:
    text: str = ""
    mode: str = "doc"
    method: str = "llm"
    input_chars: int = 0
    pieces: int = 0
    levels: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    partials: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "partials"}


def check_text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidRequestError("the document is empty: nothing to summarize", param="text")
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidRequestError(
            f"the document has {len(text)} characters; the limit is {MAX_INPUT_CHARS}", param="text"
        )
    return text


def extractive(text: str, n: int = 3) -> str:
    """TextRank: sentences as nodes, shared-word similarity as edges, PageRank, top ``n`` in order."""
    sents = sentences(check_text(text))
    if len(sents) <= n:
        return "".join(sents)
    toks = [set(tokens(s)) for s in sents]
    size = len(sents)
    w = [[0.0] * size for _ in range(size)]
    for i in range(size):
        for j in range(i + 1, size):
            common = len(toks[i] & toks[j])
            if common and len(toks[i]) > 1 and len(toks[j]) > 1:
                w[i][j] = w[j][i] = common / (math.log(len(toks[i])) + math.log(len(toks[j])))
    out_sum = [sum(row) or 1.0 for row in w]
    score = [1.0] * size
    for _ in range(40):
        score = [0.15 + 0.85 * sum(w[j][i] / out_sum[j] * score[j] for j in range(size)) for i in range(size)]
    top = sorted(sorted(range(size), key=lambda i: -score[i])[:n])
    return "".join(sents[i] for i in top)


def lead(text: str, n: int = 1) -> str:
    """The lead-sentence baseline: the first ``n`` sentences."""
    return "".join(sentences(check_text(text))[:n])


def _pieces(text: str, size: int) -> list[str]:
    out: list[str] = []
    cur = ""
    for s in sentences(text):
        while len(s) > size:  # a run-on sentence is cut hard
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


class Summarizer:
    def __init__(self, model: ChatModel, piece_chars: int = PIECE_CHARS) -> None:
        self.model = model
        self.piece_chars = piece_chars

    def stream(
        self,
        text: str,
        *,
        mode: Mode = "doc",
        max_chars: int | None = None,
        language: str | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> tuple[Summary, Iterator[Delta]]:
        if mode not in INSTRUCTIONS:
            raise InvalidRequestError(f"mode must be news, doc or paper, not {mode!r}", param="mode")
        text = check_text(text)
        n = max_chars or DEFAULT_CHARS[mode]
        if not 5 <= n <= 5000:
            raise InvalidRequestError(f"max_chars must be within [5, 5000], got {n}", param="max_chars")
        summary = Summary(mode=mode, input_chars=len(text))
        partials = _pieces(text, self.piece_chars)
        summary.pieces = len(partials)
        # map, then reduce level by level, until what is left fits one final call
        while len(partials) > 1 or len("".join(partials)) > self.piece_chars:
            summary.levels += 1
            done: list[str] = []
            for i, p in enumerate(partials):
                if progress is not None:
                    progress(i, len(partials), f"level {summary.levels}")
                done.append(self._once(p, "doc", max(80, min(400, self.piece_chars // 4)), language, summary))
            partials = _pieces("\n".join(done), self.piece_chars)
            if len(partials) >= len(done) and len(done) > 1:  # no progress: shorten harder
                partials = ["\n".join(d[: self.piece_chars // len(done)] for d in done)]
        summary.partials = partials
        return summary, self._final(partials[0], mode, n, language, summary)

    def summarize(self, text: str, **kw: object) -> Summary:
        summary, deltas = self.stream(text, **kw)  # type: ignore[arg-type]
        for _ in deltas:
            pass
        return summary

    def _messages(self, text: str, mode: str, n: int, language: str | None) -> list[Message]:
        instruction = INSTRUCTIONS[mode].format(n=n)
        if language:
            instruction = f"请用{language}回答。" + instruction
        return [
            Message("system", "你是一个准确、简洁的摘要助手，只根据给出的内容写摘要。"),
            Message("user", f"{instruction}\n\n{text}"),
        ]

    def _once(self, text: str, mode: str, n: int, language: str | None, s: Summary) -> str:
        params = SamplingParams(temperature=0, max_tokens=max(64, n * 2))
        r = collect(self.model.stream(self._messages(text, mode, n, language), params=params))
        s.prompt_tokens += r.prompt_tokens
        s.completion_tokens += r.completion_tokens
        return r.text.strip()

    def _final(self, text: str, mode: str, n: int, language: str | None, s: Summary) -> Iterator[Delta]:
        params = SamplingParams(temperature=0, max_tokens=max(64, n * 2))
        for d in self.model.stream(self._messages(text, mode, n, language), params=params):
            if isinstance(d, TextDelta):
                s.text += d.text
            elif isinstance(d, UsageDelta):
                s.prompt_tokens += d.prompt_tokens
                s.completion_tokens += d.completion_tokens
            elif isinstance(d, FinishDelta):
                s.text = s.text.strip()
            yield d
