"""The content controls of one server (``Safety``) and of one route or bot (``Guard``).

``Safety(settings)`` reads the word lists once and compiles a filter per (route, bot) on first use.
``Guard`` is what a route calls: ``check_input`` (refuses a ``block`` hit with a 400 naming the
category, masks a ``mask`` hit, records every hit), ``check_output`` / ``stream_output`` for the model's
answer, ``model()`` for the chat model with PII masked as configured, and ``redact`` for text about to be
stored. Events (one per category hit) go into a list the audit middleware writes with the request.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmkit.data.mask import Masker
from glmkit.errors import InvalidRequestError
from glmkit.safety.filter import (
    CATEGORY_LABELS,
    MASK_CHAR,
    ContentFilter,
    StreamFilter,
    Verdict,
    WordList,
    default_wordlists,
    read_wordlist,
)
from glmkit.safety.policy import ROUTE_DESCRIPTIONS, ROUTES, merged
from glmkit.safety.remote import MaskingChatModel, is_remote
from glmkit.settings import PiiModelMode, RouteName, SafetyOverride, Settings

if TYPE_CHECKING:
    from glmkit.runtime.protocol import ChatModel
    from glmkit.types import CancelToken

EVENTS_KEY = "safety_events"
SNIPPET_CONTEXT = 12
PII_MARGIN = 64  # characters around a snippet searched for PII (longer than any number or address)
DEFAULT_REFUSAL = "抱歉，这个问题我无法回答。"


class ContentBlockedError(InvalidRequestError):
    code = "content_blocked"


def label(category: str) -> str:
    zh = CATEGORY_LABELS.get(category)
    return f"{category} ({zh})" if zh else category


@functools.cache
def default_masker() -> Masker:
    return Masker()


def redact_value(value: Any, redact: Any) -> Any:
    """``value`` with ``redact`` applied to every string in it (dicts, lists and tuples are walked)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v, redact) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        masked = redact(str(value))
        return value if masked == str(value) else masked
    return value


def snippet(text: str, start: int, end: int, masker: Masker) -> str:
    """A little context around one hit, the hit itself masked with ＊ and PII masked — looked for in a
    wider window, so a phone number cut by the snippet's edge is still recognised and replaced whole."""
    lo, hi = max(0, start - SNIPPET_CONTEXT), min(len(text), end + SNIPPET_CONTEXT)
    wlo, whi = max(0, lo - PII_MARGIN), min(len(text), hi + PII_MARGIN)
    items = [(start, end, MASK_CHAR * (end - start))]
    for s in masker.find(text[wlo:whi]):
        a, b = s.start + wlo, s.end + wlo
        if b > lo and a < hi:
            items.append((max(a, lo), min(b, hi), masker.placeholders[s.type]))
    out, pos = [], lo
    for a, b, repl in sorted(items):
        if a < pos:
            continue
        out += [text[pos:a], repl]
        pos = b
    out.append(text[pos:hi])
    return ("…" if lo > 0 else "") + "".join(out) + ("…" if hi < len(text) else "")


@dataclass
class Guard:
    """The controls resolved for one route (and bot)."""

    route: RouteName
    filter: ContentFilter
    override: SafetyOverride
    pii_mask_model: PiiModelMode
    masker: Masker | None  # for storage, logs and the audit log; None: stored as given
    model_masker: Masker = field(default_factory=default_masker)
    bot: str | None = None

    # -- text about to be stored ------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        return self.masker.mask(text)[0] if self.masker is not None and text else text

    def redact_value(self, value: Any) -> Any:
        return redact_value(value, self.redact) if self.masker is not None else value

    # -- the filter ----------------------------------------------------------------------------------------
    def _events(self, stage: str, text: str, verdict: Verdict, events: list[dict[str, Any]] | None) -> None:
        if events is None or not verdict.hits:
            return
        masker = self.masker or default_masker()  # the audit log never holds PII, whatever storage says
        for cat in verdict.categories:
            hits = [h for h in verdict.hits if h.category == cat]
            first = hits[0]
            ev = {
                "route": self.route,
                "stage": stage,
                "category": cat,
                "action": verdict.actions[cat],
                "count": len(hits),
                "snippet": snippet(text, first.start, first.end, masker),
            }
            if self.bot:
                ev["bot"] = self.bot
            events.append(ev)

    def check_input(self, text: str, param: str, events: list[dict[str, Any]] | None = None) -> str:
        """``text`` as the model may see it: refused (400) for a ``block`` hit, masked for ``mask``."""
        if not text or not len(self.filter):
            return text
        verdict = self.filter.check(text)
        self._events("input", text, verdict, events)
        if verdict.blocked:
            cats = ", ".join(label(c) for c in verdict.blocked)
            raise ContentBlockedError(
                f"the request was refused by the content filter: it contains words of the category {cats}",
                param=param,
            )
        return verdict.text

    @property
    def filters_output(self) -> bool:
        return self.override.output is not False and len(self.filter) > 0

    def check_output(self, text: str, events: list[dict[str, Any]] | None = None) -> tuple[str, list[str]]:
        """The answer as it may be sent, and the categories that blocked it (then the text is '')."""
        if not text or not self.filters_output:
            return text, []
        verdict = self.filter.check(text)
        self._events("output", text, verdict, events)
        if verdict.blocked:
            return "", verdict.blocked
        return verdict.text, []

    def stream_output(self) -> StreamFilter | None:
        """A filter for a streamed answer (None when answers are not filtered)."""
        return StreamFilter(self.filter) if self.filters_output else None

    def stream_done(self, sf: StreamFilter | None, events: list[dict[str, Any]] | None) -> None:
        """Record the events of a finished (or blocked) streamed answer."""
        if sf is not None:
            self._events("output", sf.text, sf.verdict(), events)

    @property
    def refusal_text(self) -> str:
        return self.override.refusal_text or DEFAULT_REFUSAL

    # -- the model -----------------------------------------------------------------------------------------
    def model(self, model: ChatModel) -> ChatModel:
        """``model``, wrapped so that PII is masked in what it is sent when the mode says so."""
        inner = model.inner if isinstance(model, MaskingChatModel) else model
        if self.pii_mask_model == "always" or (self.pii_mask_model == "remote" and is_remote(inner)):
            return MaskingChatModel(inner, self.model_masker)
        return inner


class Safety:
    """The content controls of one server, from its settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.wordlists: list[WordList] = [
            *default_wordlists(),
            *(read_wordlist(Path(p)) for p in settings.content_wordlists),
        ]
        types = settings.pii_types
        self.masker = Masker(types) if settings.pii_mask_storage else None
        self.model_masker = Masker(types)
        self._guards: dict[tuple[str, str | None], Guard] = {}

    @property
    def base(self) -> SafetyOverride:
        return SafetyOverride(
            action=self.settings.content_filter,
            categories=dict(self.settings.content_filter_categories),
            allow=list(self.settings.content_allow),
            pii_mask_model=self.settings.pii_mask_model,
        )

    def resolve(self, route: RouteName, bot: SafetyOverride | None = None) -> SafetyOverride:
        return merged(self.base, self.settings.safety_routes.get(route), bot)

    def guard(
        self, route: RouteName, bot: SafetyOverride | None = None, bot_name: str | None = None
    ) -> Guard:
        key = (route, bot_name if bot is not None else None)
        cached = self._guards.get(key)
        if cached is not None and cached.override == self.resolve(route, bot):
            return cached
        o = self.resolve(route, bot)
        words: dict[str, list[str]] = {}
        for wl in self.wordlists:
            words.setdefault(wl.category, []).extend(wl.words)
        for cat, ws in o.words.items():
            words.setdefault(cat, []).extend(ws)
        flt = ContentFilter(words, o.action or "flag", o.categories, o.allow)
        g = Guard(route, flt, o, o.pii_mask_model or "remote", self.masker, self.model_masker, bot_name)
        self._guards[key] = g
        return g

    def redact(self, text: str) -> str:
        return self.masker.mask(text)[0] if self.masker is not None and text else text

    def model(self, model: ChatModel) -> ChatModel:
        """The server's chat model with PII masked in what it is sent, as ``pii_mask_model`` says."""
        o = SafetyOverride(pii_mask_model=self.settings.pii_mask_model)
        return Guard(
            "chat", ContentFilter({}), o, self.settings.pii_mask_model, None, self.model_masker
        ).model(model)

    def describe(self, bots: Mapping[str, SafetyOverride | None] | None = None) -> dict[str, Any]:
        """The active controls, for the console and ``GET /v1/safety``."""
        s = self.settings
        counts: dict[str, int] = {}
        for wl in self.wordlists:
            counts[wl.category] = counts.get(wl.category, 0) + len(wl.words)

        def scope(o: SafetyOverride) -> dict[str, Any]:
            g_words = {c: len(ws) for c, ws in o.words.items()}
            return {
                "action": o.action or "flag",
                "categories": {c: o.categories.get(c, o.action or "flag") for c in sorted(counts)},
                "extra_words": g_words,
                "allow": len(o.allow),
                "output": o.output is not False,
                "pii_mask_model": o.pii_mask_model or "remote",
            }

        return {
            "content_filter": {
                "action": s.content_filter,
                "categories": [
                    {"name": c, "label": CATEGORY_LABELS.get(c, c), "words": n}
                    for c, n in sorted(counts.items())
                ],
                "wordlists": [
                    {
                        "category": wl.category,
                        "words": len(wl.words),
                        "source": wl.source,
                        "file": Path(wl.path).name,
                    }
                    for wl in self.wordlists
                ],
                "routes": {r: {"paths": ROUTE_DESCRIPTIONS[r]} | scope(self.resolve(r)) for r in ROUTES},
                "bots": {name: scope(self.resolve("service", o)) for name, o in (bots or {}).items()},
            },
            "pii": {
                "logs": s.pii_mask_logs,
                "storage": s.pii_mask_storage,
                "model": s.pii_mask_model,
                "types": list(self.model_masker.detectors),
            },
            "audit": {
                "enabled": s.audit_log,
                "max_bytes": s.audit_max_bytes,
                "keep_files": s.audit_keep_files,
                "keep_days": s.audit_keep_days,
            },
        }


class RedactingFilter(logging.Filter):
    """Masks PII in a log record's message (formatted once, here)."""

    def __init__(self, masker: Masker) -> None:
        super().__init__("glmkit.redact")
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = self.masker.mask(msg)[0]
        if masked != msg:
            record.msg, record.args = masked, None
        return True


def install_log_redaction(masker: Masker, loggers: Iterable[str] = ("", "uvicorn", "uvicorn.error")) -> None:
    """Attach a ``RedactingFilter`` to the handlers of ``loggers`` (once each)."""
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter(masker))


def release_piece(sf: StreamFilter | None, text: str, cancel: CancelToken | None = None) -> str | None:
    """The part of a streamed piece that may be sent now; None once the filter has blocked the answer
    (and then the generation is cancelled)."""
    if sf is None:
        return text
    out = sf.feed(text)
    if sf.blocked:
        if cancel is not None:
            cancel.cancel()
        return None
    return out


def request_events(state: Any) -> list[dict[str, Any]]:
    """The safety events of one request (``request.state``), created on first use."""
    events = getattr(state, EVENTS_KEY, None)
    if events is None:
        events = []
        setattr(state, EVENTS_KEY, events)
    return events
