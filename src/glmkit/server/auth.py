"""API keys (stored hashed under ``$GLMKIT_HOME/api_keys.json``) and a per-key rate limit.

Keys are 32 random bytes, so a plain SHA-256 is a sound hash (no dictionary to attack); the stored file
never holds a key, and a lost key is revoked and replaced. Comparison is constant-time."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from glmkit.errors import AuthenticationError, InvalidRequestError, RateLimitError

PREFIX = "gk-"


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    sha256: str
    created: float
    rate_limit_rpm: int | None = None  # None: the server's default


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._records = self._load()

    def _load(self) -> list[KeyRecord]:
        if not self.path.exists():
            return []
        try:
            raw = json.loads(self.path.read_text("utf-8"))
            return [KeyRecord(**r) for r in raw["keys"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InvalidRequestError(
                f"{self.path} is not a valid key file ({e}); fix or delete it and add keys again"
            ) from e

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": [asdict(r) for r in self._records]}, indent=2), "utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)  # atomic: a crash never leaves a half-written key file

    @property
    def records(self) -> list[KeyRecord]:
        return list(self._records)

    def __bool__(self) -> bool:
        return bool(self._records)

    def add(self, name: str, rate_limit_rpm: int | None = None) -> tuple[KeyRecord, str]:
        """Create a key; the key itself is returned once and never stored."""
        if not name.strip():
            raise InvalidRequestError("a key needs a name", param="name")
        key = PREFIX + secrets.token_urlsafe(32)
        rec = KeyRecord(secrets.token_hex(4), name.strip(), _digest(key), time.time(), rate_limit_rpm)
        with self._lock:
            self._records.append(rec)
            self._save()
        return rec, key

    def revoke(self, key_id_or_name: str) -> KeyRecord:
        with self._lock:
            for r in self._records:
                if key_id_or_name in (r.id, r.name):
                    self._records.remove(r)
                    self._save()
                    return r
        raise InvalidRequestError(f"no key with id or name {key_id_or_name!r}", param="key")

    def check(self, authorization: str | None) -> KeyRecord:
        if not authorization:
            raise AuthenticationError("this server needs an API key: send 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthenticationError("the Authorization header must be 'Bearer <key>'")
        d = _digest(key.strip())
        found = None
        for r in self._records:
            if hmac.compare_digest(r.sha256, d):
                found = r
        if found is None:
            raise AuthenticationError("the API key is not valid (revoked or mistyped)")
        return found


class RateLimiter:
    """A token bucket per caller: ``rpm`` requests per minute, bursts up to ``rpm``."""

    def __init__(self, rpm: int) -> None:
        self.rpm = rpm
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, who: str, rpm: int | None = None) -> None:
        rate = self.rpm if rpm is None else rpm
        if rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (float(rate), now))
            tokens = min(float(rate), tokens + (now - last) * rate / 60.0)
            if tokens < 1.0:
                wait = (1.0 - tokens) * 60.0 / rate
                self._buckets[who] = (tokens, now)
                raise RateLimitError(
                    f"rate limit of {rate} requests per minute reached; retry in {wait:.1f} s",
                    retry_after=wait,
                )
            self._buckets[who] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:  # forget idle callers
                cutoff = now - 120
                self._buckets = {k: v for k, v in self._buckets.items() if v[1] > cutoff}
