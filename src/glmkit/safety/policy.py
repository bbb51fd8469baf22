"""Which content controls apply where: the settings, per-route overrides and per-bot overrides.

Scopes, most specific first: a bot's ``safety:`` block (service turns only) → the route's entry in
``safety_routes`` → the global settings. Within a scope a category's own action beats the scope's
``action``. Words and allowed phrases add up across scopes. This module imports only pydantic, so that
``glmkit.settings`` can use its types.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["off", "flag", "mask", "block"]
RouteName = Literal["chat", "kb", "service", "write"]
PiiModelMode = Literal["remote", "always", "never"]
ROUTES: tuple[RouteName, ...] = ("chat", "kb", "service", "write")
ROUTE_DESCRIPTIONS: dict[str, str] = {
    "chat": "POST /v1/chat/completions, POST /v1/completions",
    "kb": "POST /v1/kb/ask",
    "service": "POST /v1/service/{bot}/sessions/{sid}/messages",
    "write": "POST /v1/summarize, /v1/summarize/file, /v1/generate",
}


class SafetyOverride(BaseModel):
    """Overrides for one route (``safety_routes``) or one bot (``safety:`` in its YAML)."""

    model_config = ConfigDict(extra="forbid")

    action: Action | None = Field(None, description="Action for every category in this scope.")
    categories: dict[str, Action] = Field(default_factory=dict, description="Action per category.")
    words: dict[str, list[str]] = Field(
        default_factory=dict, description="Extra words by category (new categories are allowed)."
    )
    allow: list[str] = Field(default_factory=list, description="Phrases whose words never count as hits.")
    output: bool | None = Field(None, description="Also filter the model's answers (default: yes).")
    pii_mask_model: PiiModelMode | None = Field(
        None, description="Mask PII in what the model is sent: remote (default), always, never."
    )
    refusal_text: str | None = Field(
        None, max_length=500, description="What a bot says instead of an answer the filter blocked."
    )


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
