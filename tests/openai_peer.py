"""A fake OpenAI-compatible peer that records what it is sent (for tests of what leaves glmkit)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


class Peer:
    """An OpenAI-compatible chat endpoint that answers ``reply`` (a text, or a function of the request
    body) after ``delay`` seconds and keeps every request body, as it arrives."""

    def __init__(self, reply: str | Callable[[dict[str, Any]], str] = "好的，已为您记录。", delay: float = 0.0) -> None:
        self.reply = reply
        self.delay = delay
        self.bodies: list[dict[str, Any]] = []
        self.app = FastAPI()

        @self.app.get("/v1/models")
        async def models() -> Any:
            return {"object": "list", "data": [{"id": "peer", "object": "model"}]}

        @self.app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            body = await request.json()
            self.bodies.append(body)
            if self.delay:
                await asyncio.sleep(self.delay)
            reply = self.reply(body) if callable(self.reply) else self.reply

            async def events() -> AsyncIterator[bytes]:
                for piece in (reply[: len(reply) // 2], reply[len(reply) // 2 :]):
                    yield f"data: {json.dumps({'choices': [{'delta': {'content': piece}}]})}\n\n".encode()
                done = {"choices": [{"delta": {}, "finish_reason": "stop"}]}
                yield f"data: {json.dumps(done)}\n\n".encode()
                usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
                yield f"data: {json.dumps(usage)}\n\n".encode()
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

    def sent_text(self) -> str:
        return json.dumps(self.bodies, ensure_ascii=False)
