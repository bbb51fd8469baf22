"""The FastAPI app factory. State (model, keys, limiter, metrics) is built in the lifespan, never at import.

``create_app(settings)`` loads the configured model with ``settings.parallel`` sequences and closes it at
shutdown, after uvicorn has drained in-flight requests; ``create_app(settings, chat_model=m)`` serves a
model the caller owns (tests, embedding glmkit in another app)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glmkit.errors import GlmkitError, InvalidRequestError, RateLimitError
from glmkit.kb.embed import Embedder
from glmkit.runtime.protocol import ChatModel
from glmkit.safety.audit import AuditLog, AuditMiddleware
from glmkit.safety.guard import install_log_redaction
from glmkit.server.auth import KeyStore, RateLimiter
from glmkit.server.metrics import Metrics
from glmkit.server.openapi import ERROR_RESPONSES, PATTERN_MEANING, TEXT_RESPONSES
from glmkit.server.state import AppState, authorize, get_state
from glmkit.settings import Settings

log = logging.getLogger(__name__)
CONSOLE = Path(__file__).parent / "console"




def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the routes matching ``path`` accept (for a 405's Allow header)."""
    from starlette.routing import Match, Route

    def routes(items: Any) -> Iterator[Any]:
        for r in items:
            inner = getattr(r, "original_router", None)  # an included router (FastAPI >= 0.16x)
            yield from routes(inner.routes) if inner is not None else [r]

    scope = {"type": "http", "path": path, "method": "", "root_path": ""}
    hits = [
        r
        for r in routes(app.routes)
        if isinstance(r, Route) and r.methods and r.matches(scope)[0] != Match.NONE
    ]
    # /v1/kb/ask is a route of its own, not the knowledge base "ask": the most literal templates win
    fewest = min((r.path.count("{") for r in hits), default=0)
    return sorted({m for r in hits if r.path.count("{") == fewest for m in r.methods or ()})


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(
    settings: Settings | None = None,
    *,
    chat_model: ChatModel | None = None,
    embedder: Embedder | None = None,
    keys: KeyStore | None = None,
) -> FastAPI:
    settings = settings or Settings()
    keystore = keys if keys is not None else KeyStore(settings.home / "api_keys.json")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from glmkit.storage.home import home_key

        store_key = home_key(settings)  # a missing or wrong key stops the server here, not per request
        owns = chat_model is None
        if owns:
            from glmkit.runtime.loaders import load_chat_model

            s = settings.model_copy(update={"n_seq_max": settings.parallel})
            model: ChatModel = await asyncio.to_thread(load_chat_model, settings=s)
        else:
            model = chat_model  # type: ignore[assignment]
        state = AppState(settings, model, keystore, RateLimiter(settings.rate_limit_rpm), Metrics(), embedder)
        state.metrics._stats = state.engine_stats
        state.store_key = store_key
        _start_safety(state)
        app.state.glmkit = state
        try:
            yield
        finally:
            state.draining = True
            if state.audit is not None:
                await asyncio.to_thread(state.audit.close)
            if owns:
                await asyncio.to_thread(model.close)

    app = FastAPI(
        title="glmkit",
        description="OpenAI-compatible API and web console for ChatGLM3-family models.",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )

    @app.exception_handler(GlmkitError)
    async def _glmkit_error(request: Request, e: GlmkitError) -> JSONResponse:
        headers = {}
        if isinstance(e, RateLimitError):
            headers["Retry-After"] = str(max(1, round(e.retry_after)))
        if e.status >= 500:
            log.warning("%s %s -> %s: %s", request.method, request.url.path, e.status, e.message)
        return JSONResponse(
            error_body(e.message, e.type, e.code, e.param), status_code=e.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        first = errs[0] if errs else {}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = ".".join(loc) or None
        if first.get("type") == "json_invalid":
            return JSONResponse(
                error_body(
                    f"the request body is not valid JSON: {first.get('msg', '')}",
                    "invalid_request_error",
                    "invalid_json",
                ),
                status_code=400,
            )
        if first.get("type") == "extra_forbidden":
            msg = f"unrecognized request argument: {param}"
            return JSONResponse(
                error_body(msg, "invalid_request_error", "unknown_parameter", param), status_code=400
            )
        if not loc and first.get("type") in ("model_attributes_type", "dict_type"):
            return JSONResponse(
                error_body("the request body must be a JSON object", "invalid_request_error", "invalid_json"),
                status_code=400,
            )
        if first.get("type") == "missing" and not loc:
            return JSONResponse(
                error_body("the request needs a JSON body", "invalid_request_error", "invalid_json"),
                status_code=400,
            )
        msg = f"{param or 'body'}: {first.get('msg', 'invalid value')}"
        if first.get("type") == "string_pattern_mismatch":
            why = PATTERN_MEANING.get(str((first.get("ctx") or {}).get("pattern", "")))
            if why:
                msg = f"{param or 'body'}: {why}"
        if len(errs) > 1:
            msg += f" (and {len(errs) - 1} more problem{'s' if len(errs) > 2 else ''})"
        return JSONResponse(error_body(msg, "invalid_request_error", "invalid_value", param), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        msg = str(e.detail)
        if e.status_code == 404:
            msg = f"no route {request.method} {request.url.path}"
        if e.status_code == 400 and msg == "There was an error parsing the body":  # FastAPI's words
            msg = "the request body cannot be read: it is not UTF-8 JSON (or not a valid form)"
            code = "invalid_json"
        headers = dict(e.headers or {})
        if e.status_code == 405:  # Starlette's names only the first matching route's methods
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
            headers["Allow"] = ", ".join(_allowed_methods(request.app, request.url.path))
        return JSONResponse(
            error_body(msg, "invalid_request_error", code), status_code=e.status_code, headers=headers
        )

    from glmkit.server.routes.kb import router as kb_router
    from glmkit.server.routes.openai import router as openai_router

    app.include_router(openai_router)
    app.include_router(kb_router)
    from glmkit.server.routes.service import router as service_router

    app.include_router(service_router)
    from glmkit.server.routes.write import router as write_router

    app.include_router(write_router)
    from glmkit.server.routes.safety import router as safety_router

    app.include_router(safety_router)

    @app.get("/health")
    async def health(request: Request) -> Any:
        state = get_state(request)
        check = getattr(getattr(state.chat, "engine", None), "file_problem", None)
        problem = check() if callable(check) else None
        body = {
            "status": "draining" if state.draining else ("degraded" if problem else "ok"),
            "model": state.chat.name,
            "uptime_s": round(time.time() - state.started, 1),
            **state.engine_stats(),
        }
        if problem:
            body["problem"] = problem
            return JSONResponse(body, status_code=503)
        return body

    @app.get("/metrics", dependencies=[], responses=TEXT_RESPONSES)
    async def metrics(request: Request) -> Response:
        await authorize(request)
        return Response(get_state(request).metrics.render(), media_type="text/plain; version=0.0.4")

    if CONSOLE.is_dir():
        app.mount("/console", StaticFiles(directory=CONSOLE), name="console")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(CONSOLE / "index.html", headers={"Cache-Control": "no-cache"})

    app.add_middleware(MetricsMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuditMiddleware)  # outermost of the three: it also sees the 413s
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def _start_safety(state: AppState) -> None:
    """PII masking for the model and the logs, and the audit log, as the settings say (docs/safety.md)."""
    settings = state.settings
    state.chat = state.safety.model(state.chat)
    if settings.pii_mask_logs:
        install_log_redaction(state.safety.model_masker)
    if settings.audit_log:
        state.audit = AuditLog(
            settings.home / "audit",
            max_bytes=settings.audit_max_bytes,
            keep_files=settings.audit_keep_files,
            keep_days=settings.audit_keep_days,
            key=state.store_key,
        )


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: at once from Content-Length, or while reading a chunked body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    n = -1
                if n < 0 or n > self.max_bytes:
                    await _send_json(send, 413 if n > 0 else 400, _too_large(self.max_bytes, n))
                    return
        # No (or a lying) Content-Length: read the body here, up to the limit, then replay it to the app.
        chunks: list[bytes] = []
        seen = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            seen += len(body)
            if seen > self.max_bytes:
                await _send_json(send, 413, _too_large(self.max_bytes, seen, at_least=True))
                return
            chunks.append(body)
            if not msg.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: disconnect notices for streaming responses

        await self.app(scope, replay, send)


def _too_large(limit: int, n: int, at_least: bool = False) -> dict[str, Any]:
    if n < 0:
        return error_body("Content-Length is not a valid number", "invalid_request_error", "invalid_request")
    return error_body(
        f"request body of {'more than ' if at_least else ''}{n} bytes is over the server's limit of "
        f"{limit} bytes",
        "invalid_request_error",
        "payload_too_large",
    )


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": raw})


class MetricsMiddleware:
    """Counts requests by route template and status, and times them (streams: until the last byte)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        status = 500
        state: AppState | None = getattr(scope["app"].state, "glmkit", None) if "app" in scope else None

        async def watch(msg: Message) -> None:
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        if state is not None:
            state.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, watch)
        finally:
            if state is not None:
                route = scope.get("route")
                path = getattr(route, "path", None) or "other"
                state.metrics.in_flight.dec()
                state.metrics.requests.labels(path, str(status)).inc()
                state.metrics.latency.labels(path).observe(time.monotonic() - start)


__all__ = ["InvalidRequestError", "create_app", "is_loopback"]
