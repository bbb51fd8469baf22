"""What the OpenAPI schema says about responses, so that it is true: every error any route can return is
documented with its body, and streaming routes declare ``text/event-stream`` beside JSON."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error shape, used for every 4xx and 5xx glmkit returns."""

    error: ErrorDetail


_WHY = {
    400: "Malformed request: bad JSON, unknown field, a value the operation cannot use",
    401: "Missing or unknown API key",
    403: "Not allowed on this server's configuration",
    404: "Unknown model, knowledge base, document, session, template or route",
    409: "Conflicts with the current state (e.g. a knowledge base that already exists)",
    413: "Request body or document over the limit",
    422: "A field has the wrong type or is out of range (`param` names it)",
    429: "Rate limit reached (see Retry-After)",
    502: "A remote backend failed",
    503: "Queue full, shutting down, or the model file is unavailable",
    504: "The request ran past the server's time limit",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": why} for code, why in _WHY.items()
}
SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, or with `stream: true` server-sent events ending in `data: [DONE]`",
        "content": {"application/json": {}, "text/event-stream": {}},
    }
}
TEXT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}
}

# Patterns request fields use, and what they mean in error messages people can read.
NON_BLANK = r"\S"
NAME_PATTERN = r"^[\w\-][\w\-.]{0,63}$"
TIME_PATTERN = (
    r"^(\d+(\.\d+)?[dhm]?|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)$"
)
PATTERN_MEANING = {
    NON_BLANK: "must contain some text (it is empty or only spaces)",
    NAME_PATTERN: "use 1-64 letters, digits, '_', '-' or '.', not starting with '.'",
    TIME_PATTERN: "use 7d, 12h, 30m (ago), 2025-01-31, 2025-01-31T08:00 or Unix seconds",
}
