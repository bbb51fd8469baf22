"""The one exception tree of glmkit.

    GlmkitError                      base; carries a stable ``code`` and an HTTP ``status``
    ├── InvalidRequestError (400)    malformed messages, bad sampling values, invalid tool schema
    │   ├── ContextOverflowError     prompt (plus max_tokens) does not fit the context window
    │   └── ToolCallParseError       the model wrote a tool call that cannot be parsed
    ├── ModelNotFoundError (404)     unknown model name / missing file / unknown backend
    ├── NotFoundError (404)          another named thing that does not exist (a template, a tool)
    ├── PermissionDeniedError (403)  not allowed for this key or with this server's configuration
    ├── ModelLoadError (503)         a model file exists but cannot be loaded (corrupt, wrong format)
    ├── CancelledError (499)         generation was cancelled by its caller
    ├── BackendError (502)           a remote backend failed or answered nonsense
    ├── UnprocessableError (422)     a request field has the wrong type or is out of range
    ├── AuthenticationError (401)    missing or unknown API key
    ├── PayloadTooLargeError (413)   request body over the server's limit
    ├── RateLimitError (429)         a key (or client) sent too many requests; carries ``retry_after``
    ├── OverloadedError (503)        the queue is full or the server is shutting down
    ├── EncryptionKeyError (503)     the encryption key is missing, wrong or malformed for this home
    └── TimeoutError_ (504)          the request ran past the server's time limit

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


class NotFoundError(GlmkitError):
    status = 404
    code = "not_found"
    type = "invalid_request_error"


class PermissionDeniedError(GlmkitError):
    status = 403
    code = "permission_denied"
    type = "permission_error"


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


class UnprocessableError(GlmkitError):
    status = 422
    code = "invalid_value"
    type = "invalid_request_error"


class AuthenticationError(GlmkitError):
    status = 401
    code = "invalid_api_key"
    type = "authentication_error"


class PayloadTooLargeError(GlmkitError):
    status = 413
    code = "payload_too_large"
    type = "invalid_request_error"


class RateLimitError(GlmkitError):
    status = 429
    code = "rate_limit_exceeded"
    type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: float = 1.0, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after


class OverloadedError(GlmkitError):
    status = 503
    code = "overloaded"
    type = "server_error"


class EncryptionKeyError(GlmkitError):
    """The stores under ``GLMKIT_HOME`` cannot be opened with the key given (or without one)."""

    status = 503
    code = "encryption_key_error"
    type = "server_error"


class TimeoutError_(GlmkitError):  # the builtin name is taken
    status = 504
    code = "timeout"
    type = "server_error"
