"""A model file that vanishes or changes under a running server: new requests get 503 with the reason,
/health turns 503 "degraded", the server process keeps running; with the file back, service resumes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx

from glmkit.runtime.loaders import load_chat_model
from glmkit.server.app import create_app
from glmkit.settings import Settings
from servers import serve

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "你好"}], "max_tokens": 4}


def test_vanished_or_rewritten_model_file_gives_503_not_a_crash(chatglm3_tiny: Any, tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    shutil.copy(chatglm3_tiny.gguf, path)
    settings = Settings(home=tmp_path / "home", n_threads=1, n_ctx=256)
    model = load_chat_model(str(path), settings)
    model.name = "tiny"
    with serve(create_app(settings, chat_model=model)) as url:
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=60).status_code == 200
        assert httpx.get(f"{url}/health").json()["status"] == "ok"

        moved = tmp_path / "elsewhere.gguf"
        path.rename(moved)  # the file vanishes
        r = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=60)
        assert r.status_code == 503 and "vanished" in r.json()["error"]["message"]
        h = httpx.get(f"{url}/health")
        assert h.status_code == 503 and h.json()["status"] == "degraded"

        moved.rename(path)  # the same file back: service resumes
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=60).status_code == 200

        data = bytearray(path.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 4096] = b"\xff" * 4096
        path.write_bytes(bytes(data[: len(data) - 100]))  # rewritten and truncated in place
        r = httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=60)
        assert r.status_code == 503 and "changed on disk" in r.json()["error"]["message"]
        assert httpx.get(f"{url}/v1/models").status_code == 200  # the process is alive and answering
