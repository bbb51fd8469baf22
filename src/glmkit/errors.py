"""The one exception tree of glmkit.

    GlmkitError                      base; carries a stable ``code`` and an HTTP ``status``
    ├── InvalidRequestError (400)    malformed messages, bad sampling values, invalid tool schema
    │   ├── ContextOverflowError     prompt (plus max_tokens) does not fit the context window
    │   └── ToolCallParseError       the model wrote a tool call that cannot be parsed
    ├── ModelNotFoundError (404)     unknown model name / missing file / unknown backend
    ├── ModelLoadError (503)         a model file exists but cannot be loaded (corrupt, wrong format)
    ├── CancelledError (499)         generation was cancelled by its caller
    └── BackendError (502)           a remote backend failed or answered nonsense

Every message names the problem and, where there is one, the fix.
"""

from __future__ import annotations


class GlmkitError(Exception):
    status: int = 500
    code: str = "internal_error"
    type: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequestError(GlmkitError):
    status = 400
    code = "invalid_request"
    type = "invalid_request_error"


class ContextOverflowError(InvalidRequestError):
    code = "context_length_exceeded"


class ToolCallParseError(InvalidRequestError):
    code = "tool_call_parse_error"


class ModelNotFoundError(GlmkitError):
    status = 404
    code = "model_not_found"
    type = "invalid_request_error"


class ModelLoadError(GlmkitError):
    status = 503
    code = "model_load_failed"
    type = "server_error"


class CancelledError(GlmkitError):
    status = 499
    code = "cancelled"
    type = "cancelled"


class BackendError(GlmkitError):
    status = 502
    code = "backend_error"
    type = "server_error"
