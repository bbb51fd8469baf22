"""The 知识库 (knowledge base) tab of the web console in a real headless Chromium, driven by Playwright.

Uses Debian's /usr/bin/chromium (never `playwright install`) and the ``fake_server`` fixture from
tests/server/conftest.py: a scripted chat model with the real embedding model and a SQLite store under a
temp home. A screenshot of the finished tab is saved to tests/server/artifacts/console_kb.png (gitignored)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from browser import Watch as PageWatch
from browser import screenshot

REPLY = "退款会在3到5个工作日内到账[1]。"
REFUND = (
    "# 退款政策\n\n## 到账时间\n退款审核通过后，款项会在3到5个工作日内原路退回到您的支付账户，节假日顺延。\n"
)
XSS = "<img src=x onerror=alert(1)>"


@dataclass
class Watch(PageWatch):
    """Also every /v1/kb request (method, path)."""

    kb_requests: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def page_watch(browser: Any) -> Iterator[tuple[Any, Watch]]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(30_000)
    watch = Watch()
    watch.attach(page, accept_confirm=True)  # the console asks before deleting; anything else fails

    def on_request(request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.path.startswith("/v1/kb"):
            watch.kb_requests.append((request.method, parts.path))

    page.on("request", on_request)
    try:
        yield page, watch
    finally:
        context.close()


def test_knowledge_base_tab(page_watch: tuple[Any, Watch], fake_server: Any, tmp_path: Path) -> None:
    page, watch = page_watch
    refund = tmp_path / "refund.md"
    refund.write_text(REFUND, encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(bytes(range(256)) * 8)

    with fake_server(("\n" + REPLY,)) as (url, _engine, _keys):
        page.goto(url + "/")
        page.wait_for_selector("#tabs .tab")
        page.click("#tab-kb")
        assert page.get_attribute("#tab-kb", "aria-selected") == "true"
        assert page.is_visible("#panel-kb") and not page.is_visible("#panel-chat")
        page.wait_for_selector("#kb-list .kb-list-note")  # the (empty) list has loaded
        assert page.is_visible("#kb-empty")

        # create "shop" (its description is shown as text, never as HTML)
        page.fill("#kb-new-name", "shop")
        page.fill("#kb-new-desc", "商城客服 " + XSS)
        page.click("#kb-create")
        page.wait_for_selector('#kb-list .kb-item.active[data-name="shop"]')
        assert page.inner_text("#kb-title") == "shop"
        assert XSS in page.inner_text("#kb-desc")
        assert "0 个文档" in page.inner_text("#kb-list")

        # creating it again says it exists (the 409 is logged in the page console by Chromium)
        watch.expect_failure(409, "/v1/kb")
        page.fill("#kb-new-name", "shop")
        page.click("#kb-create")
        page.wait_for_selector("#kb-side-error:not([hidden])")
        assert "已存在" in page.inner_text("#kb-side-error")

        # upload a good and a binary file: one report line each, the failure with its message
        page.set_input_files("#kb-upload-input", [str(refund), str(bad)])
        results = page.locator("#kb-upload-results .upload-result")
        results.nth(1).wait_for(timeout=180_000)
        good = page.locator('#kb-upload-results .upload-result[data-source="refund.md"]')
        failed = page.locator('#kb-upload-results .upload-result[data-source="bad.txt"]')
        assert good.get_attribute("data-status") == "added"
        assert "已添加" in good.inner_text()
        assert failed.get_attribute("data-status") == "failed"
        assert "is-failed" in (failed.get_attribute("class") or "")
        assert failed.locator(".upload-error").inner_text().strip(), "the failure has no message"
        assert "1 个失败" in page.inner_text("#kb-upload-status")

        # the documents list and the counts follow
        page.wait_for_selector('#kb-docs .kb-doc[data-source="refund.md"]')
        assert page.locator("#kb-docs .kb-doc").count() == 1
        page.wait_for_function(
            "() => document.querySelector('#kb-list .kb-item.active').innerText.includes('1 个文档')"
        )

        # search: refund.md comes first
        page.fill("#kb-search-input", "退款多久到账")
        page.press("#kb-search-input", "Enter")
        first = page.locator("#kb-search-results .kb-hit").first
        first.wait_for(timeout=60_000)
        assert first.get_attribute("data-source") == "refund.md"
        assert "refund.md" in first.locator(".kb-hit-source").inner_text()
        assert "3到5个工作日" in first.locator(".kb-hit-text").inner_text()
        assert first.locator(".kb-hit-score").inner_text().strip()

        # ask: the answer streams in, then the citations; [1] becomes a superscript link to citation 1
        page.fill("#kb-ask-input", "退款多久能到账？")
        page.click("#kb-ask-send")
        page.wait_for_selector('#kb-answer[data-done="1"]', timeout=120_000)
        answer = page.inner_text("#kb-answer")
        assert "退款会在3到5个工作日内到账" in answer and "[1]" not in answer
        assert page.get_attribute("#kb-answer", "data-found") == "1"
        assert not page.is_visible("#kb-answer-badge")
        assert not page.is_visible("#kb-answer-error")
        cites = page.locator("#kb-citations .kb-cite")
        assert cites.count() == 1
        assert cites.first.get_attribute("data-source") == "refund.md"
        assert "refund.md" in page.inner_text("#kb-citations")
        marker = page.locator("#kb-answer sup.cite-ref a[data-cite='1']")
        assert marker.count() == 1
        marker.click()
        page.wait_for_selector("#kb-cite-1.flash")
        assert page.is_enabled("#kb-ask-send") and not page.is_enabled("#kb-ask-stop")

        assert page.locator("#panel-kb img").count() == 0
        screenshot(page, "console_kb")

        # remove the document, then the knowledge base (both ask first)
        page.locator('#kb-docs .kb-doc[data-source="refund.md"] .kb-doc-remove').click()
        page.wait_for_selector('#kb-docs .kb-doc[data-source="refund.md"]', state="detached")
        page.click("#kb-delete")
        page.wait_for_selector('#kb-list .kb-item[data-name="shop"]', state="detached")
        assert page.is_visible("#kb-empty")

    assert ("POST", "/v1/kb/shop/documents") in watch.kb_requests
    assert ("DELETE", "/v1/kb/shop/documents/refund.md") in watch.kb_requests
    assert ("DELETE", "/v1/kb/shop") in watch.kb_requests
    watch.assert_clean(expected_dialogs=2)
