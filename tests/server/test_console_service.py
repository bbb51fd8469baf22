"""The 客服 (customer) and 坐席 (agent) tabs of the web console in a real headless Chromium, via Playwright.

Uses Debian's /usr/bin/chromium (never `playwright install`). The server runs one customer-service bot on the
real embedded model (an FAQ entry, no intent model, no knowledge base) and requires an API key, so every
request the console makes must carry it. A customer and an agent, each in their own browser context, go
through a whole hand-off: FAQ answer with its trace, hand-off, take, the agent's reply reaching the customer
by polling, hand-back, analytics. Screenshots go to tests/server/artifacts/console_service*.png
(gitignored)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from browser import Watch as PageWatch
from browser import screenshot
from glmkit.runtime.chat import EngineChatModel
from glmkit.server.app import create_app
from glmkit.server.auth import KeyStore
from glmkit.settings import Settings
from servers import serve

STORE_SERVICE = "glmkit.console.service.v1"
BOT_YAML = """\
name: shop
faq:
  - question: 你们的营业时间是什么时候？
    answer: 我们的人工客服每天 9:00-21:00 在线。
    aliases: [客服几点上班]
default_route: {action: chat}
"""
FAQ_QUESTION = "你们的营业时间是什么时候？"
FAQ_ANSWER = "我们的人工客服每天 9:00-21:00 在线。"
AGENT_REPLY = "您好，我是客服小李。"
XSS = "<img src=x onerror=alert(1)>"


@dataclass
class Watch(PageWatch):
    """Also every /v1/service request (method, path+query, Authorization) and the POST bodies."""

    service: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path+query, auth
    bodies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def bot_server(tmp_path: Path, qwen: EngineChatModel) -> Iterator[tuple[str, str]]:
    """The app with the "shop" bot on the real embedded model, behind one API key: yields (url, key)."""
    yaml_path = tmp_path / "shop.yaml"
    yaml_path.write_text(BOT_YAML, encoding="utf-8")
    keys = KeyStore(tmp_path / "k.json")
    _, key = keys.add("console")
    settings = Settings(home=tmp_path, bots=[str(yaml_path)], rate_limit_rpm=0)
    with serve(create_app(settings, chat_model=qwen, keys=keys)) as url:
        yield url, key


@pytest.fixture
def pages(browser: Any) -> Iterator[Any]:
    """``open_page()`` -> (page, watch) in a fresh browser context (its own localStorage)."""
    contexts: list[Any] = []

    def open_page() -> tuple[Any, Watch]:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        watch = Watch()
        watch.attach(page)

        def on_request(request: Any) -> None:
            parts = urlsplit(request.url)
            if parts.path.startswith("/v1/service"):
                where = parts.path + ("?" + parts.query if parts.query else "")
                watch.service.append((request.method, where, request.headers.get("authorization")))
                if request.method == "POST":
                    watch.bodies.append((parts.path, json.loads(request.post_data or "{}")))

        page.on("request", on_request)
        return page, watch

    try:
        yield open_page
    finally:
        for c in contexts:
            c.close()


def open_console(page: Any, watch: Watch, url: str, key: str, tab: str) -> None:
    # the console asks for the model list as it loads, before the key is typed in: that one 401 is expected
    watch.expect_failure(401, "/v1/models")
    page.goto(url + "/")
    page.wait_for_selector("#tabs .tab")
    page.fill("#api-key", key)  # on the chat tab's settings; used by every tab
    page.click(f"#tab-{tab}")
    assert page.get_attribute(f"#tab-{tab}", "aria-selected") == "true"
    assert page.is_visible(f"#panel-{tab}")


def count(page: Any, selector: str) -> int:
    return int(page.locator(selector).count())


def test_customer_and_agent_hand_off(bot_server: tuple[str, str], pages: Any) -> None:
    url, key = bot_server
    customer, cwatch = pages()
    open_console(customer, cwatch, url, key, "service")

    # the bot list has loaded and "shop" is selected; a new session starts in state "bot"
    customer.wait_for_function("() => document.querySelector('#svc-bot').value === 'shop'")
    assert not customer.is_visible("#svc-hint")
    customer.click("#svc-new")
    customer.wait_for_selector('#svc-state[data-state="bot"]', timeout=120_000)  # first use loads the bot
    sid = customer.evaluate("() => window.glmkitConsole.service.sid")
    assert sid and json.loads(customer.evaluate(f"() => localStorage.getItem('{STORE_SERVICE}')"))[
        "sessions"
    ] == {"shop": sid}

    # a close paraphrase of the FAQ entry gets the curated answer, with a trace saying route faq
    customer.fill("#svc-input", "客服几点上班？")
    customer.click("#svc-send")
    bot_msgs = '#svc-messages .svc-msg[data-role="assistant"]'
    customer.wait_for_selector(bot_msgs, timeout=60_000)
    first = customer.locator(bot_msgs).first
    assert FAQ_ANSWER in first.locator(".msg-body").inner_text()
    assert "客服几点上班？" in customer.locator('#svc-messages .svc-msg[data-role="user"]').inner_text()
    trace = first.locator(".svc-trace")
    assert trace.get_attribute("data-route") == "faq"
    assert not trace.locator('dd[data-key="faq"]').is_visible()  # collapsed until asked
    trace.locator("summary").click()
    assert "为什么这样回答" in trace.locator("summary").inner_text()
    assert "常见问题" in trace.inner_text() and "faq" in trace.inner_text()
    assert FAQ_QUESTION in trace.locator('dd[data-key="faq"]').inner_text()
    assert "相似度" in trace.locator('dd[data-key="faq"]').inner_text()

    # thumbs up on the answer is posted and shown as pressed
    first.locator(".svc-fb-up").click()
    customer.wait_for_selector(f'{bot_msgs} .svc-fb-up[aria-pressed="true"]')
    feedback = [b for p, b in cwatch.bodies if p.endswith("/feedback")]
    assert feedback == [{"rating": 1, "comment": ""}]

    # a reload continues the same session (the session id is kept in localStorage)
    customer.reload()
    customer.wait_for_selector(bot_msgs)
    assert customer.evaluate("() => window.glmkitConsole.service.sid") == sid
    assert customer.get_attribute("#tab-service", "aria-selected") == "true"
    assert count(customer, "#svc-messages .svc-msg") == 2
    assert customer.get_attribute(f"{bot_msgs} .svc-fb-up", "aria-pressed") == "true"

    # asking for a human: the bot hands off and the badge says waiting
    customer.fill("#svc-input", "转人工")
    customer.press("#svc-input", "Enter")
    customer.wait_for_selector('#svc-state[data-state="waiting"]', timeout=60_000)
    assert customer.locator(bot_msgs).last.locator(".svc-trace").get_attribute("data-route") == "handoff"
    assert count(customer, bot_msgs) == 2

    # the agent, in another browser: the queue shows the session with its reason and summary
    agent, awatch = pages()
    open_console(agent, awatch, url, key, "agent")
    agent.fill("#agent-name", "小李")
    item = agent.locator(f'#agent-queue .agent-item[data-session="{sid}"]')
    item.wait_for(timeout=60_000)
    assert "客户要求转人工" in item.inner_text() and "转人工" in item.locator(".agent-summary").inner_text()
    assert not agent.is_enabled("#agent-send") and not agent.is_enabled("#agent-release")
    item.locator(".agent-take").click()

    # taken: the full history is shown, the customer's badge follows by polling
    agent.wait_for_selector('#agent-state[data-state="human"]')
    agent.wait_for_selector(f'#agent-queue .agent-item[data-session="{sid}"]', state="detached")
    agent.wait_for_selector(f'#agent-taken .agent-item.mine[data-session="{sid}"]')
    assert count(agent, '#agent-history .svc-msg[data-role="user"]') == 2
    assert count(agent, '#agent-history .svc-msg[data-role="assistant"]') == 2
    assert FAQ_ANSWER in agent.inner_text("#agent-history")
    customer.wait_for_selector('#svc-state[data-state="human"]', timeout=15_000)

    # the agent replies; the customer sees it without doing anything (polling)
    agent.fill("#agent-input", AGENT_REPLY)
    agent.click("#agent-send")
    agent.wait_for_selector('#agent-history .svc-msg[data-role="agent"]')
    agent.fill("#agent-input", "订单信息：" + XSS)
    agent.press("#agent-input", "Enter")
    agent.wait_for_function(
        "() => document.querySelectorAll('#agent-history .svc-msg[data-role=\"agent\"]').length === 2"
    )
    customer.wait_for_function(
        "() => document.querySelectorAll('#svc-messages .svc-msg[data-role=\"agent\"]').length === 2",
        timeout=15_000,
    )
    said = customer.locator('#svc-messages .svc-msg[data-role="agent"]')
    assert AGENT_REPLY in said.first.inner_text()
    assert XSS in said.last.inner_text() and customer.locator("#svc-messages img").count() == 0

    # while the human holds the session the bot stays quiet
    customer.fill("#svc-input", "好的，谢谢")
    customer.click("#svc-send")
    customer.wait_for_function(
        "() => document.querySelectorAll('#svc-messages .svc-msg[data-role=\"user\"]').length === 3"
    )
    customer.wait_for_selector("#svc-send:not([disabled])")
    assert count(customer, bot_msgs) == 2
    agent.wait_for_function(
        "() => document.querySelectorAll('#agent-history .svc-msg[data-role=\"user\"]').length === 3",
        timeout=15_000,
    )

    # hand back to the bot: both sides follow, and the bot answers again
    agent.click("#agent-release")
    agent.wait_for_selector('#agent-state[data-state="bot"]')
    assert not agent.is_enabled("#agent-send") and not agent.is_enabled("#agent-release")
    customer.wait_for_selector('#svc-state[data-state="bot"]', timeout=15_000)
    customer.fill("#svc-input", "客服几点上班？")
    customer.click("#svc-send")
    customer.wait_for_function(f"() => document.querySelectorAll('{bot_msgs}').length === 3", timeout=60_000)
    assert customer.locator(bot_msgs).last.locator(".svc-trace").get_attribute("data-route") == "faq"

    # analytics: the numbers in a table, and an inline SVG bar chart of the routes
    agent.click("#analytics-refresh")
    agent.wait_for_selector('#analytics-table tr[data-key="route:faq"] td:text-is("2")')
    table = agent.locator("#analytics-table")
    assert table.locator('tr[data-key="route:handoff"] td').inner_text() == "1"
    assert table.locator('tr[data-key="sessions"] td').inner_text() == "1"
    assert table.locator('tr[data-key="answers"] td').inner_text() == "3"
    assert table.locator('tr[data-key="handoff_rate"] td').inner_text() == "100.0%"
    assert "常见问题" in table.inner_text() and "暂无意图数据" in table.inner_text()
    assert agent.evaluate("() => document.querySelector('#analytics-chart').tagName.toLowerCase()") == "svg"
    bars = agent.evaluate(
        """() => [...document.querySelectorAll('#analytics-chart rect.bar')].map(
            r => [r.getAttribute('data-key'), +r.getAttribute('width'), +r.getAttribute('data-value')])"""
    )
    assert sorted((k, v) for k, _, v in bars) == [("faq", 2), ("handoff", 1)]
    widths = {k: w for k, w, _ in bars}
    assert widths["faq"] > widths["handoff"] > 0
    assert agent.locator("#analytics-chart img, #analytics-chart foreignObject").count() == 0

    customer.locator(bot_msgs).last.locator(".svc-trace summary").click()
    screenshot(customer, "console_service")
    screenshot(agent, "console_service_agent")

    # the agent's requests: take / reply / release with the agent's name, the queue polled both ways
    posts = {p.rsplit("/", 1)[-1]: b for p, b in awatch.bodies}
    assert posts["take"] == {"agent": "小李"} and posts["release"] == {"agent": "小李"}
    assert {"agent": "小李", "text": AGENT_REPLY} in [b for p, b in awatch.bodies if p.endswith("/agent")]
    wheres = {w for _, w, _ in awatch.service}
    assert "/v1/service/shop/handoffs?status=waiting" in wheres
    assert "/v1/service/shop/handoffs?status=taken" in wheres
    # the customer polled the session while a human was involved
    polls = [w for m, w, _ in cwatch.service if m == "GET" and w == f"/v1/service/shop/sessions/{sid}"]
    assert len(polls) >= 3
    for w in (cwatch, awatch):
        assert w.service and all(auth == "Bearer " + key for _, _, auth in w.service), w.service
        w.assert_clean()


def test_no_bots_shows_the_hint(pages: Any, tmp_path: Path, qwen: EngineChatModel) -> None:
    app = create_app(
        Settings(home=tmp_path, rate_limit_rpm=0), chat_model=qwen, keys=KeyStore(tmp_path / "k.json")
    )
    with serve(app) as url:
        page, watch = pages()
        page.goto(url + "/")
        page.wait_for_selector("#tabs .tab")
        page.click("#tab-service")
        page.wait_for_selector("#svc-hint:not([hidden])")
        assert "--bot CONFIG" in page.inner_text("#svc-hint")
        assert not page.is_enabled("#svc-new") and not page.is_enabled("#svc-send")
        page.click("#tab-agent")
        page.wait_for_selector("#agent-hint:not([hidden])")
        assert "--bot CONFIG" in page.inner_text("#agent-hint")
        watch.assert_clean()
