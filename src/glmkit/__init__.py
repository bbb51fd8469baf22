"""glmkit: build applications on ChatGLM3-family chat models.

The public API: load a model, stream typed deltas, collect a whole reply; knowledge bases and question
answering; the customer-service bot and its intent classifier; the server's app factory (lazily, since it
needs the ``server`` extra).
"""

from typing import Any

from glmkit.apps.bot_config import BotConfig
from glmkit.apps.intent import IntentClassifier
from glmkit.apps.intent_llm import LLMIntentClassifier
from glmkit.apps.qa import QA, Answer
from glmkit.apps.service import Bot
from glmkit.apps.sessions import SessionStore
from glmkit.errors import (
    BackendError,
    CancelledError,
    ContextOverflowError,
    GlmkitError,
    InvalidRequestError,
    ModelLoadError,
    ModelNotFoundError,
    ToolCallParseError,
)
from glmkit.kb import open_knowledge_bases
from glmkit.kb.service import KnowledgeBases
from glmkit.runtime.chat import collect
from glmkit.runtime.loaders import load_chat_model
from glmkit.runtime.protocol import ChatModel
from glmkit.settings import Settings
from glmkit.types import (
    CancelToken,
    ChatResult,
    Constraint,
    Delta,
    FinishDelta,
    LogprobDelta,
    Message,
    NamedTool,
    SamplingParams,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallErrorDelta,
    UsageDelta,
)

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "create_app":  # needs fastapi (the server extra): imported on first use
        from glmkit.server.app import create_app

        return create_app
    raise AttributeError(f"module 'glmkit' has no attribute {name!r}")


__all__ = [
    "QA",
    "Answer",
    "BackendError",
    "Bot",
    "BotConfig",
    "CancelToken",
    "CancelledError",
    "ChatModel",
    "ChatResult",
    "Constraint",
    "ContextOverflowError",
    "Delta",
    "FinishDelta",
    "GlmkitError",
    "IntentClassifier",
    "InvalidRequestError",
    "KnowledgeBases",
    "LLMIntentClassifier",
    "LogprobDelta",
    "Message",
    "ModelLoadError",
    "ModelNotFoundError",
    "NamedTool",
    "SamplingParams",
    "SessionStore",
    "Settings",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallErrorDelta",
    "ToolCallParseError",
    "UsageDelta",
    "collect",
    "create_app",
    "load_chat_model",
    "open_knowledge_bases",
]
