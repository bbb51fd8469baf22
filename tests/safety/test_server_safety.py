"""Content controls and the audit log through the real app: each filter action on each way in and out,
PII kept out of the audit database, the session store and what a remote model is sent, per-bot
overrides, the admin-only audit routes and the console's read-only overview."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from glmkit.runtime.backends.openai import OpenAIChatModel
from glmkit.server.app import create_app
from glmkit.server.auth import KeyStore
from glmkit.settings import Settings
from kb_fakes import HashEmbedder
from openai_peer import Peer
from servers import serve

PII = {
    "mobile": "13812345678",
    "id_card": "11010519491231002X",
    "email": "zhang.san@example.com",
    "bank_card": "6222020200112233446",
}
PII_TEXT = f"我的手机{PII['mobile']}，身份证{PII['id_card']}，邮箱{PII['email']}，卡号{PII['bank_card']}"


def chat(url: str, text: str, stream: bool = False, **headers: str) -> httpx.Response:
    body = {"model": "fake", "messages": [{"role": "user", "content": text}], "stream": stream}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def streamed_text(r: httpx.Response) -> tuple[str, list[str]]:
    text, reasons = "", []
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            ch = json.loads(line[6:])["choices"]
            if ch:
                text += ch[0]["delta"].get("content") or ""
                if ch[0]["finish_reason"]:
                    reasons.append(ch[0]["finish_reason"])
    return text, reasons


def audit(url: str, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/v1/audit", params=params, timeout=30)
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["data"]
    return rows


def db_text(path: Path) -> str:
    """Every value of every table of an SQLite database, as one string."""
    db = sqlite3.connect(path)
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return json.dumps([db.execute(f"SELECT * FROM {t}").fetchall() for t in tables], ensure_ascii=False)
    finally:
        db.close()


def assert_no_pii(text: str, where: str) -> None:
    for kind, value in PII.items():
        assert value not in text, f"{kind} {value} found in {where}"


def test_block_refuses_with_400_naming_the_category(fake_server: Any) -> None:
    with fake_server(content_filter_categories={"gambling": "block"}) as (url, engine, _):
        r = chat(url, "教我怎么网赌赢钱")
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == "content_blocked" and "gambling" in err["message"] and "赌博" in err["message"]
        assert "网赌" not in err["message"]  # the category, never the word list
        assert engine.prompts == []  # the model never saw it
        assert chat(url, "你好").status_code == 200
        rows = audit(url, flagged="true")
        assert rows[0]["outcome"] == "blocked" and rows[0]["status"] == 400
        assert rows[0]["flags"][0] | {"snippet": ""} == {
            "route": "chat",
            "stage": "input",
            "category": "gambling",
            "action": "block",
            "count": 1,
            "snippet": "",
        }
        assert "网赌" not in rows[0]["flags"][0]["snippet"] and "＊＊" in rows[0]["flags"][0]["snippet"]


def test_mask_on_the_way_in_and_out_streamed_or_not(fake_server: Any) -> None:
    script = ("你这个傻逼问题，答案是四十二。",)
    with fake_server(script, safety_routes={"chat": {"action": "mask"}}) as (url, engine, _):
        r = chat(url, "傻逼，告诉我答案")
        assert r.status_code == 200
        assert r.json()["choices"][0]["message"]["content"] == "你这个＊＊问题，答案是四十二。"
        prompt = engine.tokenizer.decode_bytes(engine.prompts[-1]).decode()
        assert "＊＊，告诉我答案" in prompt and "傻逼" not in prompt
        text, reasons = streamed_text(chat(url, "你好", stream=True))
        assert text == "你这个＊＊问题，答案是四十二。" and reasons == ["stop"]
        rows = audit(url, flagged="true")
        stages = sorted((f["stage"], f["action"]) for row in rows for f in row["flags"])
        assert stages == [("input", "mask"), ("output", "mask"), ("output", "mask")]


def content_chunks(r: httpx.Response) -> list[str]:
    out = []
    for line in r.text.splitlines():
        if line.startswith("data: {"):
            for c in json.loads(line[6:])["choices"]:
                if c["delta"].get("content"):
                    out.append(c["delta"]["content"])
    return out


@pytest.mark.parametrize("action", ["off", "flag", "mask"])
def test_a_short_streamed_answer_streams_with_the_filter_on(fake_server: Any, action: str) -> None:
    """With the shipped lists on (the default ``flag``, or ``mask``), a short answer arrives piece by
    piece, not as one chunk at the end (issue 14), and loses nothing."""
    answer = "你好！有什么我可以帮你的吗？"
    # a ChatGLM3 reply starts with its (empty) metadata line; one character a token
    with fake_server(("\n" + answer,), content_filter=action, delay=0.005) as (url, _, _keys):
        chunks = content_chunks(chat(url, "你好", stream=True))
        assert "".join(chunks) == answer
        assert len(chunks) >= 2, chunks
        assert len(chunks[-1]) < len(answer) // 2, chunks


def test_output_block_withholds_the_answer(fake_server: Any) -> None:
    script = ("好的，先去买冰毒，然后……",)
    with fake_server(script, content_filter_categories={"drugs": "block"}) as (url, _, _keys):
        r = chat(url, "你好")
        assert r.status_code == 200
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "content_filter" and not choice["message"]["content"]
        text, reasons = streamed_text(chat(url, "你好", stream=True))
        assert "冰毒" not in text and reasons == ["content_filter"]
        assert {row["outcome"] for row in audit(url, flagged="true")} == {"blocked"}


def test_flag_allows_and_records(fake_server: Any) -> None:
    with fake_server() as (url, _, _keys):
        r = chat(url, "你个傻逼")
        assert r.status_code == 200
        (row,) = audit(url, flagged="true")
        assert row["outcome"] == "ok" and row["who"] == "anonymous" and row["route"] == "/v1/chat/completions"
        assert row["flags"][0]["category"] == "profanity" and row["flags"][0]["action"] == "flag"
        assert row["request_bytes"] > 0 and row["response_bytes"] > 0 and row["latency_ms"] > 0


def test_pii_never_reaches_the_audit_database(fake_server: Any, tmp_path: Path) -> None:
    with fake_server() as (url, _, _keys):
        for text in [f"傻逼 {PII_TEXT} 傻逼", f"{PII['mobile']}傻逼{PII['email']}"]:
            assert chat(url, text).status_code == 200
            assert chat(url, text, stream=True).status_code == 200
        rows = audit(url, flagged="true")
        assert len(rows) == 4 and all("[手机号]" in row["flags"][0]["snippet"] for row in rows)
    stored = "".join(db_text(p) for p in (tmp_path / "audit").glob("*.sqlite3"))
    assert "傻逼" not in stored
    assert_no_pii(stored, "the audit database")


def test_the_remote_backend_is_sent_no_pii(peer: tuple[str, Peer], tmp_path: Path) -> None:
    base, fake_peer = peer
    model = OpenAIChatModel(base, "peer")
    app = create_app(Settings(home=tmp_path), chat_model=model, keys=KeyStore(tmp_path / "keys.json"))
    with serve(app) as url:
        body = {
            "model": "peer",
            "messages": [
                {"role": "system", "content": f"客户档案：{PII['id_card']}"},
                {"role": "user", "content": PII_TEXT},
            ],
        }
        r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "好的，已为您记录。"
    assert fake_peer.bodies, "the peer was not called"
    sent = fake_peer.sent_text()
    assert_no_pii(sent, "the request to the remote model")
    assert "[手机号]" in sent and "[身份证号]" in sent and "[邮箱]" in sent and "[银行卡号]" in sent


def test_pii_mask_model_never_means_never(peer: tuple[str, Peer], tmp_path: Path) -> None:
    base, fake_peer = peer
    s = Settings(home=tmp_path, pii_mask_model="never")
    with serve(
        create_app(s, chat_model=OpenAIChatModel(base, "peer"), keys=KeyStore(tmp_path / "k.json"))
    ) as url:
        body = {"model": "peer", "messages": [{"role": "user", "content": PII_TEXT}]}
        assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).status_code == 200
    assert PII["mobile"] in fake_peer.sent_text()  # configurable: off means off


BOT = """
name: {name}
persona: 你是客服。
default_route: {{action: chat}}
{extra}
"""


@pytest.fixture
def bot_server(peer: tuple[str, Peer], tmp_path: Path) -> Iterator[tuple[str, Peer, Path]]:
    base, fake_peer = peer
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        BOT.format(name="strict", extra="safety: {categories: {profanity: block}, words: {brand: [竞品A]}}"),
        "utf-8",
    )
    relaxed = tmp_path / "relaxed.yaml"
    relaxed.write_text(BOT.format(name="relaxed", extra=""), "utf-8")
    s = Settings(home=tmp_path, bots=[str(strict), str(relaxed)], rate_limit_rpm=0)
    app = create_app(
        s,
        chat_model=OpenAIChatModel(base, "peer"),
        embedder=HashEmbedder(),
        keys=KeyStore(tmp_path / "k.json"),
    )
    with serve(app) as url:
        yield url, fake_peer, tmp_path


def session(url: str, bot: str) -> str:
    r = httpx.post(f"{url}/v1/service/{bot}/sessions", json={"user": PII["mobile"]}, timeout=30)
    assert r.status_code == 201, r.text
    sid: str = r.json()["session"]
    return sid


def say(url: str, bot: str, sid: str, text: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/service/{bot}/sessions/{sid}/messages", json={"text": text}, timeout=60)


def test_per_bot_override_and_no_pii_in_sessions_or_the_peer(bot_server: tuple[str, Peer, Path]) -> None:
    url, fake_peer, home = bot_server
    strict, relaxed = session(url, "strict"), session(url, "relaxed")
    r = say(url, "strict", strict, "你们真是傻逼")
    assert r.status_code == 400 and "profanity" in r.json()["error"]["message"]
    r = say(url, "relaxed", relaxed, "你们真是傻逼")
    assert r.status_code == 200 and r.json()["trace"]["safety"][0]["action"] == "flag"
    r = say(url, "strict", strict, "竞品A比你们好")
    assert (
        r.status_code == 200 and r.json()["trace"]["safety"][0]["category"] == "brand"
    )  # the bot's own words
    assert say(url, "relaxed", relaxed, "我不认识竞品A").json()["trace"].get("safety") is None
    r = say(url, "strict", strict, PII_TEXT)
    assert r.status_code == 200
    r = say(url, "strict", strict, f"转人工，我的电话是{PII['mobile']}")
    assert r.json()["state"] == "waiting"
    queue = httpx.get(f"{url}/v1/service/strict/handoffs", timeout=30).json()["data"]
    assert "[手机号]" in queue[0]["summary"]
    msg = r.json()["message_id"]
    httpx.post(
        f"{url}/v1/service/strict/messages/{msg}/feedback", json={"rating": 1, "comment": PII["email"]}
    )
    assert_no_pii(fake_peer.sent_text(), "the requests to the remote model")
    assert_no_pii(db_text(home / "service" / "sessions.sqlite3"), "the session store")
    stored = "".join(db_text(p) for p in (home / "audit").glob("*.sqlite3"))
    assert_no_pii(stored, "the audit database")
    rows = audit(url, flagged="true")
    assert {f.get("bot") for row in rows for f in row["flags"]} == {"strict", "relaxed"}


def test_safety_overview_lists_controls_and_recent_events(bot_server: tuple[str, Peer, Path]) -> None:
    url, _, _ = bot_server
    say(url, "relaxed", session(url, "relaxed"), "傻逼")
    info = httpx.get(f"{url}/v1/safety", timeout=30).json()
    cf = info["content_filter"]
    assert cf["action"] == "flag" and {c["name"] for c in cf["categories"]} >= {"profanity", "gambling"}
    assert set(cf["routes"]) == {"chat", "kb", "service", "write"}
    assert cf["bots"]["strict"]["categories"]["profanity"] == "block"
    assert cf["bots"]["relaxed"]["categories"]["profanity"] == "flag"
    assert all(wl["source"] for wl in cf["wordlists"])
    assert info["pii"] == {
        "logs": True,
        "storage": True,
        "model": "remote",
        "types": ["id_card", "bank_card", "email", "mobile", "landline", "address"],
    }
    assert info["events"] and info["events"][0]["flags"][0]["category"] == "profanity"


def test_audit_is_for_admin_keys_and_records_who(fake_server: Any) -> None:
    with fake_server(audit_admins=["ops"]) as (url, _, keys):
        user, user_key = keys.add("alice")
        _, admin_key = keys.add("ops")
        assert chat(url, "你好", Authorization=f"Bearer {user_key}").status_code == 200
        assert chat(url, "你好").status_code == 401
        r = httpx.get(f"{url}/v1/audit", headers={"Authorization": f"Bearer {user_key}"})
        assert r.status_code == 403 and "audit_admins" in r.json()["error"]["message"]
        info = httpx.get(f"{url}/v1/safety", headers={"Authorization": f"Bearer {user_key}"}).json()
        assert info["events"] == [] and "admins" in info["events_note"]
        r = httpx.get(f"{url}/v1/audit", headers={"Authorization": f"Bearer {admin_key}"})
        assert r.status_code == 200
        who = [
            (row["who"], row["status"]) for row in r.json()["data"] if row["route"] == "/v1/chat/completions"
        ]
        assert (user.id, 200) in who and ("unauthenticated", 401) in who
        csv_text = httpx.get(
            f"{url}/v1/audit", params={"format": "csv"}, headers={"Authorization": f"Bearer {admin_key}"}
        ).text
        assert csv_text.splitlines()[0].startswith("ts,who,method,route,status")


def test_oversized_bodies_are_audited_too(fake_server: Any) -> None:
    with fake_server(max_body_bytes=2048) as (url, _, _keys):
        r = httpx.post(
            f"{url}/v1/chat/completions", content=b"x" * 5000, headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        rows = [row for row in audit(url) if row["status"] == 413]
        assert rows and rows[0]["request_bytes"] == 5000 and rows[0]["outcome"] == "rejected"
