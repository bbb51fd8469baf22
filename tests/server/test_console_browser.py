"""The web console (src/glmkit/server/console) in a real headless Chromium, driven by Playwright.

Uses Debian's /usr/bin/chromium (never `playwright install`) and the ``live_server`` fixture from
tests/server/conftest.py: one running glmkit server on the real embedded model for the whole session, and
one browser. Every tab is opened and screenshotted (tests/server/artifacts/console_tab_*.png, gitignored);
chat, 知识库, 摘要 and 写作 run on the real model (a streamed answer grows, an upload is listed). The
scripted-model tests of the other tabs are test_console_kb.py, test_console_service.py (客服 and 坐席, on
the real model too), test_console_write.py and tests/safety/test_console_safety.py. Any JavaScript error
in a page -- uncaught, or console.error -- fails its test (``browser.Watch``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from browser import Watch as PageWatch
from browser import screenshot

PROMPT = "用一句话介绍一下你自己。"

# Storage layout of the console (js/store.js; seeded directly by the rendering test).
STORE_CONVERSATIONS = "glmkit.console.conversations.v1"
STORE_CURRENT = "glmkit.console.current.v1"

# One call per poll: is the last assistant message finished, and how long is its rendered text?
LAST_ASSISTANT_JS = """() => {
  const all = document.querySelectorAll('.msg-assistant');
  const a = all[all.length - 1];
  if (!a) return null;
  return {done: a.getAttribute('data-done') === '1', text: a.querySelector('.msg-body').innerText};
}"""


@dataclass
class Watch(PageWatch):
    """Also the chat requests' bodies and every /v1 request's Authorization header."""

    chat_bodies: list[dict[str, Any]] = field(default_factory=list)
    auth_headers: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
def console(browser: Any, live_server: str) -> Iterator[tuple[Any, Watch]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(30_000)
    watch = Watch()
    watch.attach(page)

    def on_request(request: Any) -> None:
        path = urlsplit(request.url).path
        if path.startswith("/v1/"):
            watch.auth_headers.append((path, request.headers.get("authorization")))
        if request.method == "POST" and path == "/v1/chat/completions":
            watch.chat_bodies.append(json.loads(request.post_data or "{}"))

    page.on("request", on_request)
    page.goto(live_server + "/")
    page.wait_for_selector("#tabs .tab")
    try:
        yield page, watch
    finally:
        context.close()


def wait_models(page: Any) -> str:
    page.wait_for_function(
        "() => { const s = document.querySelector('#model-select'); return s && s.value; }", timeout=60_000
    )
    model: str = page.eval_on_selector("#model-select", "s => s.value")
    return model


@pytest.mark.embedded
def test_chat_streams_and_survives_reload(console: tuple[Any, Watch], live_server: str) -> None:
    page, watch = console
    model = wait_models(page)
    page.fill("#max-tokens", "48")
    page.fill("#message-input", PROMPT)
    page.click("#send")

    # Poll the assistant's rendered text while it streams: it must grow over several polls.
    samples: list[tuple[int, bool]] = []
    deadline = time.monotonic() + 300
    state = None
    while time.monotonic() < deadline:
        state = page.evaluate(LAST_ASSISTANT_JS)
        if state is not None:
            sample = (len(state["text"]), bool(state["done"]))
            if not samples or samples[-1] != sample:
                samples.append(sample)
            if state["done"]:
                break
        page.wait_for_timeout(20)
    assert state is not None and state["done"], f"the stream did not finish: {samples}"
    streaming_lengths = [n for n, done in samples if not done and n > 0]
    assert len(set(streaming_lengths)) >= 2, f"no growth seen while streaming: {samples}"
    assert streaming_lengths[-1] > streaming_lengths[0], samples

    assistant = page.locator(".msg-assistant").last
    answer = assistant.locator(".msg-body").inner_text().strip()
    assert answer, "empty answer"
    assert assistant.get_attribute("data-done") == "1"
    assert not assistant.locator(".msg-error").is_visible()
    assert page.is_enabled("#send") and not page.is_enabled("#stop")

    # The request the console sent is the OpenAI shape the brief asks for.
    assert len(watch.chat_bodies) == 1
    body = watch.chat_bodies[0]
    assert body["model"] == model and body["stream"] is True and body["max_tokens"] == 48
    assert body["messages"][-1] == {"role": "user", "content": PROMPT}
    assert {"temperature", "top_p"} <= body.keys()

    screenshot(page, "console")

    assert PROMPT in page.inner_text("#conversation-list")

    # Everything is back after a reload: the conversation in the sidebar and both messages.
    page.reload()
    page.wait_for_selector(".msg-user")
    assert PROMPT in page.inner_text("#conversation-list")
    assert page.locator("#conversation-list .conv.active").count() == 1
    assert PROMPT in page.locator(".msg-user").first.inner_text()
    again = page.locator(".msg-assistant").last
    assert again.get_attribute("data-done") == "1"
    assert again.locator(".msg-body").inner_text().strip() == answer
    assert page.input_value("#max-tokens") == "48"  # settings are kept too
    watch.assert_clean()


@pytest.mark.embedded
def test_stop_keeps_the_partial_answer(console: tuple[Any, Watch]) -> None:
    page, watch = console
    wait_models(page)
    page.fill("#max-tokens", "400")
    page.fill("#message-input", "写一篇大约三百字的短文，介绍春天的景色。")
    page.click("#send")
    page.wait_for_function(
        "() => { const b = document.querySelector('.msg-assistant .msg-body');"
        " return b && b.innerText.trim().length >= 4; }",
        timeout=120_000,
    )
    page.click("#stop")
    assistant = page.locator('.msg-assistant[data-done="1"]')
    assistant.wait_for(timeout=15_000)
    assert assistant.locator(".msg-body").inner_text().strip(), "the partial answer was lost"
    assert "已停止" in assistant.locator(".msg-note").inner_text()
    assert page.is_enabled("#send") and not page.is_enabled("#stop")
    watch.assert_clean()


XSS = "<img src=x onerror=alert(1)>"
MARKDOWN = (
    f"看这个：{XSS} **粗体** 和 `x < y`，[坏链接](javascript:alert(2))\n\n"
    "```python\nprint('<b>你好</b>')\n```\n\n- 第一项\n- 第二项"
)


def test_model_text_is_rendered_safely(console: tuple[Any, Watch]) -> None:
    page, watch = console
    conversation = {
        "id": "c_xss",
        "title": "安全渲染",
        "createdAt": 1,
        "updatedAt": 2,
        "messages": [
            {"id": "m_user", "role": "user", "content": MARKDOWN},
            {"id": "m_bot", "role": "assistant", "content": MARKDOWN},
        ],
    }
    page.evaluate(
        "([k1, v1, k2, v2]) => { localStorage.setItem(k1, v1); localStorage.setItem(k2, v2); }",
        [STORE_CONVERSATIONS, json.dumps([conversation]), STORE_CURRENT, "c_xss"],
    )
    page.reload()
    page.wait_for_selector(".msg-assistant[data-done='1']")
    page.wait_for_timeout(200)  # give a would-be onerror handler the chance to run

    for sel in (".msg-user", ".msg-assistant"):
        msg = page.locator(sel).first
        assert msg.locator("img").count() == 0
        assert XSS in msg.inner_text()  # shown as text
        code = msg.locator("pre > code")
        assert code.count() == 1
        assert code.inner_text() == "print('<b>你好</b>')"
        assert msg.locator("pre code b").count() == 0
        assert msg.locator("strong").inner_text() == "粗体"
        assert msg.locator("li").count() == 2
        assert msg.locator("a").count() == 0  # javascript: links stay text
    assert "安全渲染" in page.inner_text("#conversation-list")

    # the code block's copy button puts the code on the clipboard
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    button = page.locator(".msg-assistant .copy-code").first
    button.click()
    page.wait_for_function(
        "() => document.querySelector('.msg-assistant .copy-code').textContent === '已复制'"
    )
    assert page.evaluate("() => navigator.clipboard.readText()") == "print('<b>你好</b>')"
    watch.assert_clean()


def test_error_response_is_shown_in_the_chat(console: tuple[Any, Watch]) -> None:
    page, watch = console
    error = {
        "error": {
            "message": "模型 nope 不存在",
            "type": "invalid_request_error",
            "param": "model",
            "code": None,
        }
    }
    watch.expect_failure(404, "/v1/chat/completions")
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(status=404, content_type="application/json", body=json.dumps(error)),
    )
    page.fill("#message-input", "你好")
    page.press("#message-input", "Enter")
    assistant = page.locator('.msg-assistant[data-done="1"]')
    assistant.wait_for()
    assert "模型 nope 不存在" in assistant.locator(".msg-error").inner_text()
    assert page.is_enabled("#send")
    page.unroute("**/v1/chat/completions")
    watch.assert_clean()


def seed(page: Any, conversations: list[dict[str, Any]], current: str) -> None:
    page.evaluate(
        "([k1, v1, k2, v2]) => { localStorage.setItem(k1, v1); localStorage.setItem(k2, v2); }",
        [STORE_CONVERSATIONS, json.dumps(conversations), STORE_CURRENT, current],
    )
    page.reload()
    page.wait_for_selector("#conversation-list .conv")


def test_conversation_list_new_switch_delete(console: tuple[Any, Watch]) -> None:
    page, watch = console

    def conv(cid: str, title: str, updated: int, text: str) -> dict[str, Any]:
        return {
            "id": cid,
            "title": title,
            "createdAt": updated,
            "updatedAt": updated,
            "messages": [
                {"id": cid + "u", "role": "user", "content": text},
                {"id": cid + "a", "role": "assistant", "content": "答：" + text},
            ],
        }

    seed(page, [conv("c_old", "旧的会话", 1, "第一段"), conv("c_new", "新的会话", 2, "第二段")], "c_old")
    items = page.locator("#conversation-list .conv")
    assert items.all_inner_texts()[0].startswith("新的会话")  # most recent first
    assert page.locator("#conversation-list .conv.active").inner_text().startswith("旧的会话")
    assert page.locator(".msg-user .msg-body").inner_text().strip() == "第一段"

    page.locator('#conversation-list .conv[data-id="c_new"] .conv-open').click()
    assert page.locator(".msg-assistant .msg-body").inner_text().strip() == "答：第二段"

    page.locator('#conversation-list .conv[data-id="c_old"] .conv-delete').click()
    assert items.count() == 1 and "旧的会话" not in page.inner_text("#conversation-list")

    page.click("#new-chat")
    assert page.locator(".msg").count() == 0
    assert page.locator("#conversation-list .conv.active").count() == 0

    page.reload()
    page.wait_for_selector("#conversation-list .conv")
    assert page.locator("#conversation-list .conv").all_inner_texts()[0].startswith("新的会话")
    assert "旧的会话" not in page.inner_text("#conversation-list")
    watch.assert_clean()


def test_api_key_is_sent_and_kept(console: tuple[Any, Watch]) -> None:
    page, watch = console
    sse = (
        'data: {"choices":[{"index":0,"delta":{"content":"好的"},"finish_reason":null}]}\n\n'
        'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        "data: [DONE]\n\n"
    )
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(status=200, content_type="text/event-stream", body=sse),
    )
    page.fill("#api-key", "sk-console-test")
    page.fill("#message-input", "你好")
    page.click("#send")
    page.locator('.msg-assistant[data-done="1"]').wait_for()
    assert page.locator(".msg-assistant .msg-body").inner_text().strip() == "好的"
    assert ("/v1/chat/completions", "Bearer sk-console-test") in watch.auth_headers

    page.reload()
    page.wait_for_selector(".msg-assistant")
    assert page.input_value("#api-key") == "sk-console-test"
    page.wait_for_function("() => document.querySelector('#model-select').options.length > 0")
    assert ("/v1/models", "Bearer sk-console-test") in watch.auth_headers
    page.unroute("**/v1/chat/completions")
    watch.assert_clean()


# ---- every tab on the real server and the embedded model ----------------------------------------------------
REFUND = "# 退款政策\n\n## 到账时间\n退款审核通过后，款项会在3到5个工作日内原路退回到您的支付账户，节假日顺延。\n"
ARTICLE = "长城是中国古代的军事防御工程。它东起山海关，西至嘉峪关，全长两万多公里。今天的长城是世界文化遗产。"
# When each tab has loaded what it shows (the live server runs no bot: 客服 and 坐席 say how to load one).
TAB_READY = {
    "chat": "() => !!document.querySelector('#model-select').value",
    "kb": "() => window.glmkitConsole.kb.loaded",
    "service": "() => !document.querySelector('#svc-hint').hidden",
    "agent": "() => !document.querySelector('#agent-hint').hidden",
    "summarize": "() => !!document.querySelector('#sum-send')",
    "generate": "() => !!document.querySelector('#gen-kind option[value=poem]')",
    "safety": "() => document.querySelectorAll('#safety-routes tr[data-scope]').length >= 4",  # a row per route
}


def poll_growth(page: Any, js: str, timeout_s: float = 300) -> list[tuple[int, bool]]:
    """Sample ``js`` -> {done, text} every 20 ms until done; the distinct (length, done) samples seen."""
    samples: list[tuple[int, bool]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = page.evaluate(js)
        if state is not None:
            sample = (len(state["text"]), bool(state["done"]))
            if not samples or samples[-1] != sample:
                samples.append(sample)
            if state["done"]:
                return samples
        page.wait_for_timeout(20)
    raise AssertionError(f"did not finish within {timeout_s} s: {samples}")


def assert_grew(samples: list[tuple[int, bool]]) -> None:
    streaming = [n for n, done in samples if not done and n > 0]
    assert len(set(streaming)) >= 2 and streaming[-1] > streaming[0], f"no growth seen while streaming: {samples}"


def test_every_tab_opens_without_errors(console: tuple[Any, Watch]) -> None:
    page, watch = console
    for tab, ready in TAB_READY.items():
        page.click(f"#tab-{tab}")
        assert page.get_attribute(f"#tab-{tab}", "aria-selected") == "true"
        assert page.is_visible(f"#panel-{tab}")
        page.wait_for_function(ready, timeout=60_000)
        others = [t for t in TAB_READY if t != tab]
        assert not any(page.is_visible(f"#panel-{t}") for t in others), tab
        screenshot(page, f"console_tab_{tab}")
    assert "--bot CONFIG" in page.inner_text("#svc-hint")
    page.reload()  # the last tab opened is the one shown again
    page.wait_for_selector("#safety-routes tr[data-scope]")
    assert page.get_attribute("#tab-safety", "aria-selected") == "true"
    watch.assert_clean()


@pytest.mark.embedded
def test_kb_upload_is_listed_and_the_answer_streams(console: tuple[Any, Watch], tmp_path: Any) -> None:
    page, watch = console
    refund = tmp_path / "refund.md"
    refund.write_text(REFUND, encoding="utf-8")
    page.click("#tab-kb")
    page.wait_for_selector("#kb-list li")
    page.fill("#kb-new-name", "live")
    page.click("#kb-create")
    page.wait_for_selector('#kb-list .kb-item.active[data-name="live"]')

    page.set_input_files("#kb-upload-input", [str(refund)])
    page.wait_for_selector('#kb-docs .kb-doc[data-source="refund.md"]', timeout=180_000)
    assert page.get_attribute('#kb-upload-results .upload-result[data-source="refund.md"]', "data-status") == "added"
    page.wait_for_function(
        "() => document.querySelector('#kb-list .kb-item.active').innerText.includes('1 个文档')"
    )

    page.fill("#kb-ask-input", "退款多久能到账？")
    page.click("#kb-ask-send")
    samples = poll_growth(
        page,
        "() => { const a = document.querySelector('#kb-answer');"
        " return a && {done: a.getAttribute('data-done') === '1', text: a.innerText}; }",
    )
    assert_grew(samples)
    assert page.inner_text("#kb-answer").strip()
    assert not page.is_visible("#kb-answer-error")
    assert page.get_attribute("#kb-answer", "data-found") == "1"
    # what was retrieved is listed (under a closed <details>)
    assert page.locator('#kb-sources .kb-cite[data-source="refund.md"]').count() >= 1
    assert page.is_enabled("#kb-ask-send") and not page.is_enabled("#kb-ask-stop")
    screenshot(page, "console_kb_live")
    watch.assert_clean()


@pytest.mark.embedded
def test_summarize_and_generate_on_the_real_model(console: tuple[Any, Watch]) -> None:
    page, watch = console
    page.click("#tab-summarize")
    page.fill("#sum-text", ARTICLE)
    page.fill("#sum-chars", "40")
    page.click("#sum-send")
    samples = poll_growth(
        page,
        "() => { const o = document.querySelector('#sum-output');"
        " return {done: !!document.querySelector('#sum-stats').innerText"
        " || !document.querySelector('#sum-error').hidden, text: o.innerText}; }",
    )
    assert samples[-1][0] > 0, f"no summary shown: {samples}"
    assert "次模型调用" in page.inner_text("#sum-stats")
    assert not page.is_visible("#sum-error") and not page.is_visible("#sum-progress")
    assert page.is_enabled("#sum-send") and not page.is_enabled("#sum-stop")
    screenshot(page, "console_summarize_live")

    page.click("#tab-generate")
    page.wait_for_selector("#gen-kind option[value=ad]", state="attached")
    page.select_option("#gen-kind", "ad")
    assert not page.is_visible("#gen-form-select")  # 格律 is only for poems
    page.fill("#gen-topic", "新款保温杯")
    page.fill("#gen-max", "60")
    page.click("#gen-send")
    page.wait_for_function("() => /第 \\d+ 稿/.test(document.querySelector('#gen-status').innerText)", timeout=300_000)
    assert page.inner_text("#gen-output").strip(), "no text shown"
    status = page.inner_text("#gen-status")
    assert "满足全部约束" in status or "仍有约束未满足" in status
    if "仍有约束未满足" in status:
        assert page.locator("#gen-problems li").count() >= 1  # a missed constraint is named
    assert not page.is_visible("#gen-error") and page.is_enabled("#gen-send")
    screenshot(page, "console_generate_live")
    watch.assert_clean()


def test_the_watch_sees_javascript_errors(console: tuple[Any, Watch]) -> None:
    # negative control for every console test's assert_clean: both kinds of JS error are caught
    page, watch = console
    page.evaluate("() => { console.error('boom from console.error'); setTimeout(() => { throw new Error('uncaught boom'); }); }")
    page.wait_for_function("() => true")
    page.wait_for_timeout(100)
    errors = " | ".join(watch.js_errors())
    assert "boom from console.error" in errors and "uncaught boom" in errors, errors
    watch.page_errors.clear()
    watch.console_errors.clear()
    watch.assert_clean()
