"""The console's 安全 tab in headless Chromium: the active controls and the latest flagged request, read
from GET /v1/safety. A screenshot goes to tests/server/artifacts/ (gitignored)."""

from __future__ import annotations

from typing import Any

import httpx

from browser import Watch, screenshot


def test_safety_tab_shows_controls_and_recent_events(fake_server: Any, browser: Any) -> None:
    overrides = {
        "content_filter_categories": {"gambling": "block"},
        "safety_routes": {"kb": {"action": "mask"}},
    }
    with fake_server(**overrides) as (url, _engine, _keys):
        body = {"model": "fake", "messages": [{"role": "user", "content": "傻逼，我的电话13812345678"}]}
        assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30).status_code == 200
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        page = context.new_page()
        page.set_default_timeout(30_000)
        watch = Watch()
        watch.attach(page)
        try:
            page.goto(url + "/")
            page.get_by_role("tab", name="安全").click()
            page.get_by_test_id("safety-events").locator("tr.safety-event").first.wait_for()
            summary = page.get_by_test_id("safety-summary").inner_text()
            assert "默认动作：标记" in summary and "审计日志：开" in summary
            routes = page.get_by_test_id("safety-routes")
            assert "拦截" in routes.locator('tr[data-scope="对话 API"]').inner_text()  # gambling: block
            assert routes.locator('tr[data-scope="知识库问答"]').inner_text().count("打码") >= 5
            lists = page.get_by_test_id("safety-categories").inner_text()
            assert "better-profanity" in lists and "bad-words-chinese" in lists
            event = page.get_by_test_id("safety-events").locator("tr.safety-event").first.inner_text()
            assert "profanity" in event and "[手机号]" in event
            assert "13812345678" not in event and "傻逼" not in event
            screenshot(page, "console_safety", full_page=True)
            watch.assert_clean()
        finally:
            context.close()
