"""Safety routes: the active content controls (``GET /v1/safety``) and the audit log (``GET /v1/audit``).

Reading the audit log needs an admin key: one whose id or name is in the ``audit_admins`` setting. On a
server without keys (loopback only) anyone who can reach it may read it, as with every other route."""

from __future__ import annotations

import asyncio
import io
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from glmkit.errors import PermissionDeniedError
from glmkit.safety.audit import AuditLog, export, parse_time
from glmkit.server.openapi import TIME_PATTERN
from glmkit.server.state import AppState, authorize, caller, get_state

router = APIRouter(dependencies=[Depends(authorize)], tags=["safety"])


def is_audit_admin(state: AppState, key_id: str | None) -> bool:
    if not state.keys:
        return True
    admins = set(state.settings.audit_admins)
    return any(r.id == key_id and (r.id in admins or r.name in admins) for r in state.keys.records)


def _audit(request: Request) -> AuditLog:
    state = get_state(request)
    if not is_audit_admin(state, caller(request)):
        raise PermissionDeniedError(
            "reading the audit log needs an admin key: add this key's id or name to the audit_admins "
            "setting (GLMKIT_AUDIT_ADMINS), or use `glmkit audit export` on the server"
        )
    audit: AuditLog | None = state.audit
    if audit is None:
        raise PermissionDeniedError("the audit log is off on this server (audit_log = false)")
    return audit


AUDIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The events: a JSON list, JSON lines or CSV, by `format`",
        "content": {"application/json": {}, "application/x-ndjson": {}, "text/csv": {}},
    }
}


@router.get("/v1/audit", responses=AUDIT_RESPONSES)
async def audit_events(
    request: Request,
    since: str | None = Query(
        None, description="7d, 12h, 30m (ago), an ISO date or time, or Unix seconds", pattern=TIME_PATTERN
    ),
    until: str | None = Query(None, pattern=TIME_PATTERN),
    flagged: bool = Query(False, description="only requests with content-filter events"),
    who: str | None = Query(None, max_length=64),
    route: str | None = Query(None, max_length=200),
    limit: int = Query(1000, ge=1, le=100_000),
    format: Literal["json", "jsonl", "csv"] = Query("json"),
) -> Any:
    audit = _audit(request)
    t0 = parse_time(since) if since else None
    t1 = parse_time(until) if until else None
    await asyncio.to_thread(audit.flush, 2.0)
    events = await asyncio.to_thread(
        audit.query, t0, t1, flagged=flagged, who=who, route=route, limit=limit, newest_first=format == "json"
    )
    if format == "json":
        return {"object": "list", "data": [e.as_dict() for e in events]}
    buf = io.StringIO()
    export(events, buf, format)
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    return Response(buf.getvalue(), media_type=f"{media}; charset=utf-8")


@router.get("/v1/safety")
async def safety_overview(request: Request, limit: int = Query(20, ge=0, le=200)) -> Any:
    """The active content controls (global, per route, per bot) and, for admins, the latest flagged or
    blocked requests from the audit log."""
    state = get_state(request)
    bots = {b.config.name: b.config.safety for b in (await asyncio.to_thread(state.bots)).values()}
    out = state.safety.describe(bots)
    if state.audit is None:
        out["events"], out["events_note"] = [], "the audit log is off"
    elif not is_audit_admin(state, caller(request)):
        out["events"], out["events_note"] = [], "recent events are shown to audit admins only"
    else:
        await asyncio.to_thread(state.audit.flush, 2.0)
        events = await asyncio.to_thread(state.audit.query, flagged=True, limit=limit, newest_first=True)
        out["events"] = [e.as_dict() for e in events]
    return out
