"""glmkit: build applications on ChatGLM3-family chat models.

The public API: load a model, stream typed deltas, collect a whole reply.
"""

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
from glmkit.runtime.chat import collect
from glmkit.runtime.models import load_chat_model
from glmkit.runtime.protocol import ChatModel
from glmkit.settings import Settings
from glmkit.types import (
    CancelToken,
    ChatResult,
    Delta,
    FinishDelta,
    Message,
    SamplingParams,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallErrorDelta,
    UsageDelta,
)

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "CancelToken",
    "CancelledError",
    "ChatModel",
    "ChatResult",
    "ContextOverflowError",
    "Delta",
    "FinishDelta",
    "GlmkitError",
    "InvalidRequestError",
    "Message",
    "ModelLoadError",
    "ModelNotFoundError",
    "SamplingParams",
    "Settings",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallErrorDelta",
    "ToolCallParseError",
    "UsageDelta",
    "collect",
    "load_chat_model",
]
