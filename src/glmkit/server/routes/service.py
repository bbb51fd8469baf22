"""Customer-service routes: customer sessions and turns, the human agents' queue, feedback, analytics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from glmkit.safety.guard import request_events
from glmkit.server.protocol import StrictBody
from glmkit.server.state import authorize, get_state

router = APIRouter(prefix="/v1/service", dependencies=[Depends(authorize)], tags=["customer service"])


class _Body(StrictBody):
    pass


class NewSession(_Body):
    user: str = Field("anonymous", max_length=128)


class Say(_Body):
    text: str = Field(
        max_length=100_000
    )  # the bot itself answers 413 past its own limit, with a clear message


class Agent(_Body):
    agent: str = Field(min_length=1, max_length=64)


class AgentSay(Agent):
    text: str = Field(min_length=1, max_length=8000)


class Feedback(_Body):
    rating: int | None = None
    comment: str = Field("", max_length=2000)


def _bot(request: Request, name: str) -> Any:
    return get_state(request).bot(name)


@router.get("")
async def bots(request: Request) -> Any:
    loaded = await asyncio.to_thread(get_state(request).bots)
    return {"object": "list", "data": [{"name": n} for n in loaded]}


@router.post("/{bot}/sessions", status_code=201)
async def new_session(bot: str, body: NewSession, request: Request) -> Any:
    b = await asyncio.to_thread(_bot, request, bot)
    return {"session": await asyncio.to_thread(b.start, body.user)}


@router.get("/{bot}/sessions/{sid}")
async def get_session(bot: str, sid: str, request: Request) -> Any:
    b = await asyncio.to_thread(_bot, request, bot)
    s = await asyncio.to_thread(b.store.get, bot, sid)
    return s | {"messages": await asyncio.to_thread(b.store.messages, sid)}


@router.post("/{bot}/sessions/{sid}/messages")
async def say(bot: str, sid: str, body: Say, request: Request) -> Any:
    b = await asyncio.to_thread(_bot, request, bot)
    get_state(request).check_capacity()
    reply = await asyncio.to_thread(b.turn, sid, body.text, request_events(request.state))
    return reply.as_dict()


@router.get("/{bot}/handoffs")
async def handoffs(bot: str, request: Request, group: str | None = None, status: str = "waiting") -> Any:
    b = await asyncio.to_thread(_bot, request, bot)
    return {"object": "list", "data": await asyncio.to_thread(b.queue, group, status)}


@router.post("/{bot}/handoffs/{sid}/take")
async def take(bot: str, sid: str, body: Agent, request: Request) -> Any:
    b = await asyncio.to_thread(_bot, request, bot)
    return await asyncio.to_thread(b.take, sid, body.agent)


@router.post("/{bot}/sessions/{sid}/agent")
async def agent_reply(bot: str, sid: str, body: AgentSay, request: Request) -> Any:
    b = await asyncio.to_thread(_bot, request, bot)
    return {"message_id": await asyncio.to_thread(b.agent_reply, sid, body.agent, body.text)}


@router.post("/{bot}/handoffs/{sid}/release")
async def release(bot: str, sid: str, body: Agent, request: Request) -> Any:
    b = await asyncio.to_thread(_bot, request, bot)
    return await asyncio.to_thread(b.release, sid, body.agent)


@router.post("/{bot}/messages/{mid}/feedback")
async def feedback(bot: str, mid: str, body: Feedback, request: Request) -> Any:
    b = await asyncio.to_thread(_bot, request, bot)
    await asyncio.to_thread(b.feedback, mid, body.rating, body.comment)
    return {"ok": True}


@router.get("/{bot}/analytics")
async def analytics(bot: str, request: Request) -> Any:
    b = await asyncio.to_thread(_bot, request, bot)
    return await asyncio.to_thread(b.analytics)
