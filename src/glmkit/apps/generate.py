"""Controlled text generation: poems, stories, articles, ad and product copy, from a topic plus controls.

Each kind is a template file (``templates/*.yaml`` in the package; users add or override kinds with YAML
files in ``$GLMKIT_HOME/templates/``): a prompt with the placeholders {topic} {controls} {length} {form}.

Constraints that can be checked are checked, and a failed draft is retried with the problems named in
the next request: a 绝句 has 4 lines and a 律诗 8, of 5 (五言) or 7 (七言) Chinese characters each;
required keywords appear; the length is within bounds. The best draft (fewest problems) is returned with
its check report, so a caller always sees whether the constraints were met."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError, NotFoundError
from glmkit.runtime.chat import collect
from glmkit.runtime.protocol import ChatModel
from glmkit.types import Constraint, Message, SamplingParams

FORMS: dict[str, tuple[int, int]] = {
    "五言绝句": (4, 5),
    "七言绝句": (4, 7),
    "五言律诗": (8, 5),
    "七言律诗": (8, 7),
}
BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
PLACEHOLDERS = {"topic", "controls", "length", "form"}
TEMPLATE_KEYS = {"description", "prompt", "default_length", "max_tokens"}
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
MAX_KEYWORDS = 12
CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Template:
    name: str
    prompt: str
    description: str = ""
    default_length: str = "三百字左右"
    max_tokens: int | None = None
    source: str = ""

    def as_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


def parse_template(name: str, data: Any, source: str) -> Template:
    """A template from parsed YAML; errors name the file and the field."""
    if not NAME.match(name):
        raise InvalidRequestError(
            f"{source}: a template name is lowercase letters, digits, - or _, not {name!r}"
        )
    if not isinstance(data, dict):
        raise InvalidRequestError(f"{source}: a template is a mapping with at least 'prompt'")
    unknown = sorted(set(data) - TEMPLATE_KEYS)
    if unknown:
        raise InvalidRequestError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(TEMPLATE_KEYS))}"
        )
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or "{topic}" not in prompt:
        raise InvalidRequestError(f"{source}: 'prompt' must be text containing {{topic}}")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(prompt) if f is not None}
    except ValueError as e:
        raise InvalidRequestError(f"{source}: 'prompt' is not a valid template ({e})") from None
    bad = sorted(fields - PLACEHOLDERS)  # no attribute or index access: only the plain names
    if bad:
        raise InvalidRequestError(
            f"{source}: unknown placeholder(s) {', '.join('{' + b + '}' for b in bad)}; "
            f"allowed: {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}"
        )
    max_tokens = data.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or not 16 <= max_tokens <= 8192):
        raise InvalidRequestError(f"{source}: 'max_tokens' must be a whole number within [16, 8192]")
    return Template(
        name,
        prompt,
        str(data.get("description", "")),
        str(data.get("default_length", "三百字左右")),
        max_tokens,
        source,
    )


def load_templates(user_dir: Path | None = None) -> dict[str, Template]:
    """The built-in kinds, then the user's YAML files (which add kinds or replace built-in ones)."""
    import yaml

    out: dict[str, Template] = {}
    dirs = [BUILTIN_TEMPLATES] + ([user_dir] if user_dir is not None and user_dir.is_dir() else [])
    for d in dirs:
        for f in sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")):
            try:
                data = yaml.safe_load(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
                raise InvalidRequestError(
                    f"{f}: cannot read this template ({type(e).__name__}: {e})"
                ) from None
            out[f.stem] = parse_template(f.stem, data, str(f))
    return out


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
    def __init__(self, model: ChatModel, templates: dict[str, Template] | None = None) -> None:
        self.model = model
        self.templates = templates if templates is not None else load_templates()

    def generate(
        self,
        kind: str,
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
        if kind not in self.templates:
            raise NotFoundError(
                f"kind must be one of {', '.join(self.templates)}, not {kind!r}", param="kind"
            )
        template = self.templates[kind]
        topic = (topic or "").strip()
        if not topic:
            raise InvalidRequestError("give a topic or request", param="topic")
        if len(topic) > 2000:
            raise InvalidRequestError("the topic is longer than 2000 characters", param="topic")
        keywords = [k.strip() for k in keywords or [] if k.strip()]
        takes_form = "{form}" in template.prompt
        if takes_form:
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
            raise InvalidRequestError(
                f"form applies to poems only (templates with {{form}}), not to {kind!r}", param="form"
            )
        if len(keywords) > MAX_KEYWORDS:
            raise InvalidRequestError(
                f"at most {MAX_KEYWORDS} keywords, got {len(keywords)}", param="keywords"
            )
        for name, v in (("min_chars", min_chars), ("max_chars", max_chars)):
            if v is not None and not 1 <= v <= 20000:
                raise InvalidRequestError(f"{name} must be within [1, 20000], got {v}", param=name)
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
            else (f"至少{min_chars}字" if min_chars else template.default_length)
        )
        prompt = template.prompt.format(
            form=form or "", topic=topic, controls="".join(controls), length=length
        )
        budget = template.max_tokens or min(2048, int((max_chars or 600) * 2))
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
