"""Durable results of model calls: a long job (a summary of a 100-page file) killed at any point goes on
from the calls that finished."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from glmkit.errors import EncryptionKeyError
from glmkit.storage.crypto import StoreKey, seal_text, unseal_text


class CallCache:
    """The results of finished model calls, one JSON line each (appended, flushed and synced as each call
    ends), keyed by what the call was asked. A summary killed at any point resumes from the calls that
    finished; a line torn by the kill is ignored. With ``key`` (an encrypted home) each line's text is
    sealed (``{"key": …, "sealed": base64 AES-GCM}``), so no summary reaches the disk in the clear."""

    def __init__(self, path: Path, key: StoreKey | None = None) -> None:
        self.path = path
        self.store_key = key
        self._done: dict[str, str] = {}
        self._lock = threading.Lock()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raw = b""
        for line in raw.decode("utf-8", errors="replace").splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
                continue
            if isinstance(obj.get("sealed"), str):
                self._done[obj["key"]] = unseal_text(obj["sealed"], key, path)
            elif isinstance(obj.get("text"), str):
                if key is not None:
                    raise EncryptionKeyError(
                        f"{key.source} is set but {path} is not encrypted: run `glmkit home encrypt`"
                    )
                self._done[obj["key"]] = obj["text"]
        self._torn = bool(raw) and not raw.endswith(b"\n")

    @staticmethod
    def key(*parts: object) -> str:
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()

    def __len__(self) -> int:
        return len(self._done)

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._done.get(key)

    def put(self, key: str, text: str) -> None:
        body = {"text": text} if self.store_key is None else {"sealed": seal_text(text, self.store_key)}
        line = json.dumps({"key": key, **body}, ensure_ascii=False) + "\n"
        with self._lock:
            self._done[key] = text
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                if self._torn:  # the killed run's last line never ended: start ours on a line of its own
                    f.write("\n")
                    self._torn = False
                f.write(line)
                f.flush()
                os.fsync(f.fileno())

    def remove(self) -> None:
        with self._lock:
            self.path.unlink(missing_ok=True)


def checkpoint_path(home: Path, text: str, **options: object) -> Path:
    """Where the calls of one summary of ``text`` with ``options`` are kept until it completes."""
    key = CallCache.key(
        hashlib.sha256(text.encode()).hexdigest(), sorted((k, str(v)) for k, v in options.items())
    )
    return home / "summaries" / "checkpoints" / f"{key[:32]}.jsonl"
