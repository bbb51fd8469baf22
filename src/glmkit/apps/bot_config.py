"""A customer-service bot's configuration: the YAML file ``glmkit service run`` and ``serve --bot`` read
(persona, knowledge bases, curated FAQ, intents and their routes, tools, hand-off words, safety overrides).

Its own module so that the bot (``apps/service.py``) and the session store (``apps/sessions.py``, which
exports rated answers per bot) both use it without importing each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from glmkit.errors import InvalidRequestError
from glmkit.settings import SafetyOverride
from glmkit.tools.schema import check_schema

HANDOFF_WORDS = (
    "转人工",
    "人工客服",
    "找人工",
    "真人",
    "人工服务",
    "human agent",
    "talk to a human",
    "real person",
)
ANGRY_WORDS = (
    "投诉",
    "骗子",
    "垃圾",
    "气死",
    "太差",
    "报警",
    "律师",
    "退钱",
    "马上",
    "立刻",
    "紧急",
    "急死",
    "scam",
    "furious",
    "urgent",
)


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FAQEntry(_Cfg):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class Route(_Cfg):
    action: Literal["faq", "kb", "tool", "handoff", "chat"]
    tool: str | None = None  # for action tool
    group: str = "default"  # the agent group a hand-off from this intent goes to
    description: str = ""


class ToolSpec(_Cfg):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    handler: str  # a name registered with register_tool (never code)

    @field_validator("parameters")
    @classmethod
    def _schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            check_schema(v)
        except InvalidRequestError as e:
            raise ValueError(e.message) from None
        return v


class BotConfig(_Cfg):
    name: str = Field(min_length=1, max_length=64)
    persona: str = "你是一名礼貌、简洁的中文客服。"
    knowledge_bases: list[str] = Field(default_factory=list)
    faq: list[FAQEntry] = Field(default_factory=list)
    faq_threshold: float = Field(0.93, ge=0, le=1)
    intent_model: str | None = None  # a folder made by glmkit service train (relative to this file), or "llm"
    routes: dict[str, Route] = Field(default_factory=dict)
    default_route: Route = Field(default_factory=lambda: Route(action="kb"))
    confidence_threshold: float = Field(0.5, ge=0, le=1)
    max_clarify: int = Field(2, ge=0, le=10)
    clarify_text: str = "抱歉，我没有完全理解您的问题，能再具体描述一下吗？"
    handoff_text: str = "已为您转接人工客服，请稍候，客服人员会尽快回复您。"
    waiting_text: str = "您的对话已转给人工客服，请稍候。"
    handoff_words: list[str] = Field(default_factory=lambda: list(HANDOFF_WORDS))
    angry_words: list[str] = Field(default_factory=lambda: list(ANGRY_WORDS))
    tools: list[ToolSpec] = Field(default_factory=list)
    history_turns: int = Field(6, ge=0, le=50)
    safety: SafetyOverride | None = None  # content-filter overrides for this bot (docs/safety.md)

    @classmethod
    def load(cls, path: Path) -> BotConfig:
        try:
            raw = yaml.safe_load(path.read_text("utf-8"))
        except OSError as e:
            raise InvalidRequestError(f"{path}: cannot read the bot config ({e.strerror})") from None
        except yaml.YAMLError as e:
            raise InvalidRequestError(f"{path}: not valid YAML: {e}") from None
        try:
            cfg = cls.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            raise InvalidRequestError(f"{path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
        if cfg.intent_model and cfg.intent_model != "llm" and not Path(cfg.intent_model).is_absolute():
            cfg.intent_model = str((path.parent / cfg.intent_model).resolve())
        for label, r in cfg.routes.items():
            if r.action == "tool" and r.tool not in {t.name for t in cfg.tools}:
                raise InvalidRequestError(
                    f"{path}: route {label!r} calls tool {r.tool!r}, which is not in tools"
                )
        return cfg
