"""The server's state, built once in the app's lifespan and handed to routes through ``request``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request

from glmkit.errors import ModelNotFoundError, OverloadedError
from glmkit.kb.embed import Embedder, load_embedder
from glmkit.kb.service import KnowledgeBases
from glmkit.runtime.protocol import ChatModel
from glmkit.server.auth import KeyStore, RateLimiter
from glmkit.server.metrics import Metrics
from glmkit.settings import Settings
from glmkit.storage.crypto import StoreKey

if TYPE_CHECKING:
    from glmkit.safety.guard import Safety


@dataclass
class AppState:
    settings: Settings
    chat: ChatModel
    keys: KeyStore
    limiter: RateLimiter
    metrics: Metrics
    embedder_instance: Embedder | None = None
    kbs_instance: KnowledgeBases | None = None
    review_queue: Any = None  # glmkit.kb.faq.ReviewQueue, opened on first use
    bots_instance: dict[str, Any] | None = None  # name -> glmkit.apps.service.Bot
    started: float = field(default_factory=time.time)
    draining: bool = False
    safety_instance: Any = None  # glmkit.safety.guard.Safety, built on first use
    audit: Any = None  # glmkit.safety.audit.AuditLog when audit_log is on (set in the app's lifespan)
    store_key: StoreKey | None = None  # the home's encryption key, checked at startup (docs/safety.md)
    _embed_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def engine_stats(self) -> dict[str, int]:
        stats = getattr(getattr(self.chat, "engine", None), "stats", None)
        return stats() if callable(stats) else {}

    def chat_model(self, name: str) -> ChatModel:
        if name == self.chat.name:
            return self.chat
        known = [self.chat.name]
        if name == self.settings.embedding_model:
            raise ModelNotFoundError(
                f"{name} is an embedding model: use it with /v1/embeddings; chat models: {', '.join(known)}",
                param="model",
            )
        raise ModelNotFoundError(
            f"model {name!r} is not served here; available: {', '.join(known)}", param="model"
        )

    async def embedder(self, name: str) -> Embedder:
        if name != self.settings.embedding_model:
            raise ModelNotFoundError(
                f"embedding model {name!r} is not served here; available: {self.settings.embedding_model}",
                param="model",
            )
        async with self._embed_lock:  # loaded on first use (1-2 s), once
            if self.embedder_instance is None:
                self.embedder_instance = await asyncio.to_thread(load_embedder, name)
        return self.embedder_instance

    @property
    def safety(self) -> Safety:
        """The content controls (word lists, per-route and per-bot filters), built on first use."""
        if self.safety_instance is None:
            from glmkit.safety.guard import Safety

            self.safety_instance = Safety(self.settings)
        safety: Safety = self.safety_instance
        return safety

    @property
    def kbs(self) -> KnowledgeBases:
        """The knowledge bases, opened on first use; they share the server's embedding model."""
        if self.kbs_instance is None:
            from glmkit.kb import open_knowledge_bases

            kbs = open_knowledge_bases(self.settings)
            if self.embedder_instance is not None:
                emb = self.embedder_instance
                kbs._embedder_factory = lambda: emb
            self.kbs_instance = kbs
        return self.kbs_instance

    def bots(self) -> dict[str, Any]:
        """The customer-service bots (configs from ``settings.bots``), loaded on first use; they share the
        server's chat model, embedding model and knowledge bases."""
        if self.bots_instance is None:
            from glmkit.apps.bot_config import BotConfig
            from glmkit.apps.service import Bot
            from glmkit.apps.sessions import SessionStore

            if self.settings.code_interpreter:
                from glmkit.tools.registry import enable_code_interpreter

                enable_code_interpreter()
            configs = [BotConfig.load(Path(p)) for p in self.settings.bots]
            self.bots_instance = {}
            if configs:
                if self.embedder_instance is None:
                    self.embedder_instance = load_embedder(self.settings.embedding_model)
                emb = self.embedder_instance
                store = SessionStore(self.settings.home / "service" / "sessions.sqlite3", self.store_key)
                for c in configs:
                    kbs = self.kbs if c.knowledge_bases else None
                    guard = self.safety.guard("service", c.safety, c.name)
                    self.bots_instance[c.name] = Bot(c, self.chat, emb, store, kbs, safety=guard)
        return self.bots_instance

    def bot(self, name: str) -> Any:
        bots = self.bots()
        try:
            return bots[name]
        except KeyError:
            known = ", ".join(sorted(bots)) or "none (start the server with --bot CONFIG)"
            raise ModelNotFoundError(f"no bot named {name!r}; bots: {known}", param="bot") from None

    def model_cards(self) -> list[dict[str, Any]]:
        created = int(self.started)
        info = getattr(getattr(self.chat, "engine", None), "info", None)
        chat: dict[str, Any] = {
            "id": self.chat.name,
            "object": "model",
            "created": created,
            "owned_by": "glmkit",
        }
        if info is not None:
            parallel = getattr(getattr(self.chat, "engine", None), "n_seq_max", 1)
            chat["glmkit"] = {
                "kind": "chat",
                "backend": info.backend,
                "n_ctx": info.n_ctx,
                "parallel": parallel,
            }
        emb = {
            "id": self.settings.embedding_model,
            "object": "model",
            "created": created,
            "owned_by": "glmkit",
            "glmkit": {"kind": "embedding"},
        }
        return [chat, emb]

    def check_capacity(self) -> None:
        if self.draining:
            raise OverloadedError("the server is shutting down; retry on another instance")
        waiting = self.engine_stats().get("waiting", 0)
        if waiting >= self.settings.max_queue:
            raise OverloadedError(
                f"{waiting} requests are already waiting for a decode slot "
                f"(max_queue={self.settings.max_queue}); retry shortly"
            )


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.glmkit
    return state


async def authorize(request: Request) -> None:
    """API key (when keys exist) and the per-caller rate limit."""
    state = get_state(request)
    who = f"ip:{request.client.host if request.client else '?'}"
    rpm = None
    request.state.key_id = None
    if state.keys:
        rec = state.keys.check(request.headers.get("authorization"))
        who, rpm = f"key:{rec.id}", rec.rate_limit_rpm
        request.state.key_id = rec.id
    state.limiter.hit(who, rpm)


def caller(request: Request) -> str | None:
    """The API key id of the request (None on an open server)."""
    return getattr(request.state, "key_id", None)
