"""The 摘要 and 写作 tabs of the web console in headless Chromium (Playwright), on a scripted model.

A screenshot of each finished tab goes to tests/server/artifacts/ (gitignored)."""

from __future__ import annotations

from typing import Any

from browser import Watch, screenshot

ARTICLE = "长城是中国古代的军事防御工程。它东起山海关，西至嘉峪关。今天的长城是世界文化遗产。" * 40
POEM = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"


def open_page(browser: Any, url: str) -> tuple[Any, Any, Watch]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(30_000)
    watch = Watch()
    watch.attach(page)
    page.goto(url + "/")
    return context, page, watch


def test_summarize_tab_streams_progress_and_summary(fake_server, browser) -> None:  # type: ignore[no-untyped-def]
    with fake_server(("\n**长城**是古代防御工程。",), delay=0.01) as (url, engine, _keys):
        context, page, watch = open_page(browser, url)
        try:
            page.get_by_role("tab", name="摘要").click()
            page.get_by_test_id("sum-text").fill(ARTICLE)
            page.get_by_test_id("sum-mode").select_option("news")
            page.get_by_test_id("sum-send").click()
            page.get_by_test_id("sum-stats").get_by_text("次模型调用").wait_for()
            out = page.get_by_test_id("sum-output")
            assert out.inner_text() == "长城是古代防御工程。"
            assert out.locator("strong").inner_text() == "长城"  # markdown rendered, not raw
            assert "3 次模型调用" in page.get_by_test_id("sum-stats").inner_text()
            assert len(engine.prompts) == 3  # two map pieces and the final call
            page.get_by_test_id("sum-extractive").check()
            page.get_by_test_id("sum-send").click()
            page.get_by_test_id("sum-stats").get_by_text("抽取式").wait_for()
            assert page.get_by_test_id("sum-output").inner_text().count("。") == 3
            page.get_by_test_id("sum-extractive").uncheck()
            page.get_by_test_id("sum-text").fill("   ")
            page.get_by_test_id("sum-send").click()
            assert "请先粘贴文本" in page.get_by_test_id("sum-error").inner_text()
            screenshot(page, "console_summarize")
            watch.assert_clean()
        finally:
            context.close()


def test_generate_tab_shows_text_and_check_report(fake_server, browser) -> None:  # type: ignore[no-untyped-def]
    with fake_server(("\n" + POEM,)) as (url, _engine, _keys):
        context, page, watch = open_page(browser, url)
        try:
            page.get_by_role("tab", name="写作").click()
            kind = page.get_by_test_id("gen-kind")
            kind.locator("option[value=product]").wait_for(state="attached")
            kind.select_option("poem")
            assert page.get_by_test_id("gen-form").is_visible()
            page.get_by_test_id("gen-topic").fill("思乡")
            page.get_by_test_id("gen-keywords").fill("明月，故乡")
            page.get_by_test_id("gen-send").click()
            page.get_by_test_id("gen-status").get_by_text("满足全部约束").wait_for()
            assert page.get_by_test_id("gen-output").inner_text() == POEM
            kind.select_option("ad")
            assert not page.get_by_test_id("gen-form").is_visible()
            page.get_by_test_id("gen-keywords").fill("奶茶")
            page.get_by_test_id("gen-topic").fill("夏日新品")
            page.get_by_test_id("gen-send").click()
            page.get_by_test_id("gen-status").get_by_text("仍有约束未满足").wait_for()
            assert "缺少关键词：奶茶" in page.get_by_test_id("gen-problems").inner_text()
            screenshot(page, "console_generate")
            watch.assert_clean()
        finally:
            context.close()
