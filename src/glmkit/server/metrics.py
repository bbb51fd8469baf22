"""Prometheus metrics of one app (its own registry, so several apps in one process do not collide)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.5, 3, 6, 12, 30, 60)


class Metrics:
    def __init__(self, engine_stats: Callable[[], dict[str, int]] | None = None) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "glmkit_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.tokens = Counter("glmkit_tokens", "Tokens processed", ["direction"], registry=r)
        self.ttft = Histogram(
            "glmkit_time_to_first_token_seconds",
            "Time to the first streamed token",
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "glmkit_request_duration_seconds",
            "Request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue = Gauge("glmkit_queue_depth", "Requests waiting for a decode slot", registry=r)
        self.active = Gauge("glmkit_active_sequences", "Sequences decoding now", registry=r)
        self.in_flight = Gauge("glmkit_requests_in_flight", "Requests being handled", registry=r)
        self._stats = engine_stats

    def render(self) -> bytes:
        if self._stats is not None:
            s = self._stats()
            self.queue.set(s.get("waiting", 0))
            self.active.set(s.get("active", 0))
        return generate_latest(self.registry)
