"""Which content controls apply where: the settings, per-route overrides and per-bot overrides.

Scopes, most specific first: a bot's ``safety:`` block (service turns only) → the route's entry in
``safety_routes`` → the global settings. Within a scope a category's own action beats the scope's
``action``. Words and allowed phrases add up across scopes. The types themselves (``Action``,
``SafetyOverride`` …) are configuration, so they live in ``glmkit.settings``, below every package.
"""

from __future__ import annotations

from glmkit.settings import RouteName, SafetyOverride

ROUTES: tuple[RouteName, ...] = ("chat", "kb", "service", "write")
ROUTE_DESCRIPTIONS: dict[str, str] = {
    "chat": "POST /v1/chat/completions, POST /v1/completions",
    "kb": "POST /v1/kb/ask",
    "service": "POST /v1/service/{bot}/sessions/{sid}/messages",
    "write": "POST /v1/summarize, /v1/summarize/file, /v1/generate",
}


def merged(*scopes: SafetyOverride | None) -> SafetyOverride:
    """One override from several, least specific first (later scopes win)."""
    out = SafetyOverride()
    for s in scopes:
        if s is None:
            continue
        words = {k: list(v) for k, v in out.words.items()}
        for cat, ws in s.words.items():
            words.setdefault(cat, []).extend(ws)
        cats = dict(out.categories)
        if s.action is not None:  # a scope's general action beats the less specific scopes' categories
            cats = {}
        cats.update(s.categories)
        out = SafetyOverride(
            action=s.action if s.action is not None else out.action,
            categories=cats,
            words=words,
            allow=[*out.allow, *s.allow],
            output=s.output if s.output is not None else out.output,
            pii_mask_model=s.pii_mask_model or out.pii_mask_model,
            refusal_text=s.refusal_text or out.refusal_text,
        )
    return out
