"""Controlled text generation: poems, stories, articles, ad copy, from a topic plus controls.

Constraints that can be checked are checked, and a failed draft is retried with the problems named in
the next request: a 绝句 has 4 lines and a 律诗 8, of 5 (五言) or 7 (七言) Chinese characters each;
required keywords appear; the length is within bounds. The best draft (fewest problems) is returned with
its check report, so a caller always sees whether the constraints were met."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from glmkit.errors import InvalidRequestError
from glmkit.runtime.chat import collect
from glmkit.runtime.protocol import ChatModel
from glmkit.types import Constraint, Message, SamplingParams

Kind = Literal["poem", "story", "article", "ad"]
FORMS: dict[str, tuple[int, int]] = {
    "五言绝句": (4, 5),
    "七言绝句": (4, 7),
    "五言律诗": (8, 5),
    "七言律诗": (8, 7),
}
TEMPLATES: dict[str, str] = {
    "poem": "写一首{form}，主题是：{topic}。{controls}只输出诗的正文，每句一行，不要标题和解释。",
    "story": "写一个{length}的故事，主题是：{topic}。{controls}",
    "article": "写一篇{length}的文章，题目或要求是：{topic}。{controls}",
    "ad": "为以下产品或活动写一段{length}的广告文案：{topic}。{controls}",
}
MAX_KEYWORDS = 12
CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class Generated:
    text: str
    kind: str
    ok: bool
    problems: list[str]
    attempts: int
    history: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


def poem_lines(text: str) -> list[str]:
    """Lines of a poem: split at line breaks and at the sentence punctuation that ends each line."""
    parts = re.split(r"[\n，。！？；,.!?;、]+", text)
    return [p for p in (re.sub(r"[^\u4e00-\u9fff]", "", x) for x in parts) if p]


def form_grammar(form: str) -> str:
    """GBNF for a classical form: N lines of exactly K Chinese characters, each ending in ，or 。 — the
    form then holds by construction on backends that honour grammars (keywords are still checked)."""
    n_lines, n_chars = FORMS[form]
    parts = []
    for i in range(n_lines):
        end = '"。"' if i % 2 else '"，"'
        parts.append(f"cjk{{{n_chars}}} {end}" + (' "\\n"' if i < n_lines - 1 else ""))
    return "root ::= " + " ".join(parts) + "\ncjk ::= [\u4e00-\u9fff]\n"


def check(
    text: str, *, form: str | None, keywords: list[str], min_chars: int | None, max_chars: int | None
) -> list[str]:
    problems = []
    if not text.strip():
        return ["the draft is empty"]
    if form:
        n_lines, n_chars = FORMS[form]
        lines = poem_lines(text)
        if len(lines) != n_lines:
            problems.append(f"{form}应有{n_lines}句，这一稿有{len(lines)}句")
        bad = [i + 1 for i, ln in enumerate(lines[:n_lines]) if len(ln) != n_chars]
        if bad:
            problems.append(f"每句应为{n_chars}个字，第{'、'.join(map(str, bad))}句不是")
    missing = [k for k in keywords if k not in text]
    if missing:
        problems.append(f"缺少关键词：{'、'.join(missing)}")
    size = len(CJK.findall(text)) or len(text)
    if min_chars and size < min_chars:
        problems.append(f"字数{size}少于{min_chars}")
    if max_chars and size > max_chars:
        problems.append(f"字数{size}多于{max_chars}")
    return problems


class Generator:
    def __init__(self, model: ChatModel) -> None:
        self.model = model

    def generate(
        self,
        kind: Kind,
        topic: str,
        *,
        form: str | None = None,
        keywords: list[str] | None = None,
        style: str | None = None,
        audience: str | None = None,
        min_chars: int | None = None,
        max_chars: int | None = None,
        retries: int = 3,
        temperature: float = 0.8,
        seed: int | None = None,
    ) -> Generated:
        if kind not in TEMPLATES:
            raise InvalidRequestError(
                f"kind must be one of {', '.join(TEMPLATES)}, not {kind!r}", param="kind"
            )
        topic = (topic or "").strip()
        if not topic:
            raise InvalidRequestError("give a topic or request", param="topic")
        if len(topic) > 2000:
            raise InvalidRequestError("the topic is longer than 2000 characters", param="topic")
        keywords = [k.strip() for k in keywords or [] if k.strip()]
        if kind == "poem":
            form = form or "五言绝句"
            if form not in FORMS:
                raise InvalidRequestError(
                    f"form must be one of {', '.join(FORMS)}, not {form!r}", param="form"
                )
            n_lines, n_chars = FORMS[form]
            room = n_lines * n_chars
            if sum(len(k) for k in keywords) > room:
                raise InvalidRequestError(
                    f"{len(keywords)} keywords of {sum(len(k) for k in keywords)} characters cannot fit a {form} of {room} characters",
                    param="keywords",
                )
        elif form:
            raise InvalidRequestError("form applies to poems only", param="form")
        if len(keywords) > MAX_KEYWORDS:
            raise InvalidRequestError(
                f"at most {MAX_KEYWORDS} keywords, got {len(keywords)}", param="keywords"
            )
        if min_chars and max_chars and min_chars > max_chars:
            raise InvalidRequestError("min_chars is larger than max_chars", param="min_chars")
        if not 0 <= retries <= 10:
            raise InvalidRequestError("retries must be within [0, 10]", param="retries")
        controls = []
        if keywords:
            controls.append(f"必须包含这些词：{'、'.join(keywords)}。")
        if style:
            controls.append(f"风格：{style}。")
        if audience:
            controls.append(f"读者：{audience}。")
        length = (
            f"{min_chars or ''}到{max_chars}字"
            if max_chars
            else (f"至少{min_chars}字" if min_chars else "三百字左右")
        )
        prompt = TEMPLATES[kind].format(form=form, topic=topic, controls="".join(controls), length=length)
        budget = 400 if kind == "poem" else min(2048, int((max_chars or 600) * 2))
        best: Generated | None = None
        history: list[dict[str, object]] = []
        messages = [Message("user", prompt)]
        for attempt in range(1, retries + 2):
            params = SamplingParams(
                temperature=temperature,
                max_tokens=budget,
                seed=None if seed is None else seed + attempt,
                constraint=Constraint("gbnf", form_grammar(form)) if form else None,
            )
            text = collect(self.model.stream(messages, params=params)).text.strip()
            problems = check(text, form=form, keywords=keywords, min_chars=min_chars, max_chars=max_chars)
            history.append({"attempt": attempt, "text": text, "problems": problems})
            if best is None or len(problems) < len(best.problems):
                best = Generated(text, kind, not problems, problems, attempt)
            if not problems:
                break
            messages = [
                Message(
                    "user", prompt + "\n\n上一稿的问题：" + "；".join(problems) + "。请重写，改正这些问题。"
                )
            ]
        assert best is not None
        best.attempts = len(history)
        best.history = history
        return best
