"""The bot's decisions on a scripted model and a fast embedder: config checks, FAQ, clarify then hand
off, angry messages, a human holding the session, the LLM intent classifier's parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import ScriptedEngine
from glmkit.apps.bot_config import BotConfig
from glmkit.apps.intent import IntentClassifier
from glmkit.apps.service import Bot
from glmkit.apps.sessions import SessionNotFoundError, SessionStore
from glmkit.errors import InvalidRequestError, PayloadTooLargeError
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from kb_fakes import HashEmbedder


def make_bot(
    tmp: Path, yaml_text: str, reply: str = "\n好的。", classifier: IntentClassifier | None = None
) -> Bot:
    p = tmp / "bot.yaml"
    p.write_text(yaml_text, "utf-8")
    model = EngineChatModel(ScriptedEngine([reply], n_ctx=4096), ChatGLM3Format(), name="fake")
    return Bot(
        BotConfig.load(p), model, HashEmbedder(), SessionStore(tmp / "s.sqlite3"), classifier=classifier
    )


BASE = """
name: shop
faq:
  - question: 支持哪些支付方式
    answer: 支持微信支付和支付宝。
faq_threshold: 0.9
default_route: {action: chat}
"""


def test_config_errors_name_the_problem(tmp_path: Path) -> None:
    for text, msg in [
        ("name: [", "not valid YAML"),
        ("persona: x", "name"),
        ("name: a\nroutes: {x: {action: fly}}", "routes.x.action"),
        ("name: a\nroutes: {x: {action: tool, tool: nope}}", "tool 'nope'"),
        ("name: a\nsurprise: 1", "surprise"),
    ]:
        p = tmp_path / "c.yaml"
        p.write_text(text, "utf-8")
        with pytest.raises(InvalidRequestError, match=msg):
            BotConfig.load(p)


def test_faq_paraphrase_gets_the_curated_answer_and_chat_otherwise(tmp_path: Path) -> None:
    bot = make_bot(tmp_path, BASE)
    sid = bot.start("u")
    r = bot.turn(sid, "支持哪些支付方式？")
    assert r.text == "支持微信支付和支付宝。" and r.trace["route"] == "faq"
    r = bot.turn(sid, "今天心情不错")
    assert r.text == "好的。" and r.trace["route"] == "chat"


def test_low_confidence_asks_then_hands_off(tmp_path: Path) -> None:
    clf = IntentClassifier.train(
        HashEmbedder(), ["我要退款", "退款申请", "快递在哪", "物流查询"], ["refund", "refund", "ship", "ship"]
    )
    bot = make_bot(tmp_path, BASE + "confidence_threshold: 0.99\nmax_clarify: 1\n", classifier=clf)
    sid = bot.start()
    assert bot.turn(sid, "嗯嗯").trace["route"] == "clarify"
    r = bot.turn(sid, "啊这")
    assert r.state == "waiting" and r.trace["trigger"] == "low confidence"


def test_angry_message_hands_off_and_the_bot_stays_quiet(tmp_path: Path) -> None:
    bot = make_bot(tmp_path, BASE)
    sid = bot.start()
    r = bot.turn(sid, "你们就是骗子，我要投诉！")
    assert r.state == "waiting" and r.trace["trigger"] == "angry/urgent"
    bot.take(sid, "alice")
    assert bot.turn(sid, "人呢").text is None
    with pytest.raises(InvalidRequestError, match="does not hold"):
        bot.release(sid, "bob")
    bot.agent_reply(sid, "alice", "您好")
    bot.release(sid, "alice")
    assert bot.turn(sid, "支持哪些支付方式").trace["route"] == "faq"
    assert [q["status"] for q in bot.queue(status="done")] == ["done"]


def test_bad_input_and_persistence(tmp_path: Path) -> None:
    bot = make_bot(tmp_path, BASE)
    sid = bot.start()
    with pytest.raises(InvalidRequestError, match="empty"):
        bot.turn(sid, " ")
    with pytest.raises(PayloadTooLargeError):
        bot.turn(sid, "x" * 5000)
    with pytest.raises(SessionNotFoundError):
        bot.turn("nope", "hi")
    bot.turn(sid, "支持哪些支付方式")
    again = make_bot(tmp_path, BASE)  # a restart: same store file
    msgs = again.store.messages(sid)
    assert [m["role"] for m in msgs] == ["user", "assistant"] and msgs[1]["trace"]["route"] == "faq"
    again.feedback(msgs[1]["id"], 1, "很好")
    with pytest.raises(SessionNotFoundError):
        again.feedback(msgs[0]["id"], 1)  # a user message is not a bot answer
    assert again.analytics()["routes"] == {"faq": 1}


def test_llm_intent_classifier_reads_the_constrained_label(tmp_path: Path) -> None:
    yaml_text = """
name: shop
intent_model: llm
routes:
  order: {action: chat, description: 订单}
  refund: {action: handoff, description: 退款, group: after_sales}
"""
    bot = make_bot(tmp_path, yaml_text, reply='\n"refund"')
    r = bot.turn(bot.start(), "我要退货")
    assert r.trace["intent"]["label"] == "refund" and r.state == "waiting"
    assert r.trace["handoff"]["group"] == "after_sales"


def test_feedback_exports_as_sft_and_faq(tmp_path: Path) -> None:
    import json

    bot = make_bot(tmp_path, BASE)
    sid = bot.start()
    good = bot.turn(sid, "支持哪些支付方式")
    bad = bot.turn(sid, "随便聊聊")
    bot.feedback(good.message_id or "", 1)
    bot.feedback(bad.message_id or "", -1, "答非所问")
    (row,) = [json.loads(line) for line in bot.export("sft").splitlines()]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert (
        row["messages"][1]["content"] == "支持哪些支付方式"
        and row["messages"][2]["content"] == "支持微信支付和支付宝。"
    )
    assert bot.export("faq").splitlines() == ["question,answer", "支持哪些支付方式,支持微信支付和支付宝。"]
    bot.store.close()  # the CLI opens the same file in another process
    r = subprocess_export(tmp_path)
    assert "支持微信支付和支付宝" in r


def subprocess_export(tmp: Path) -> str:
    import os
    import subprocess
    import sys

    env = {**os.environ, "GLMKIT_HOME": str(tmp / "home")}
    (tmp / "home" / "service").mkdir(parents=True, exist_ok=True)
    (tmp / "s.sqlite3").rename(tmp / "home" / "service" / "sessions.sqlite3")
    r = subprocess.run(
        [sys.executable, "-m", "glmkit", "service", "export", str(tmp / "bot.yaml"), "--format", "faq"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout
