"""Cleaning: HTML, control characters, width rules, whitespace, boilerplate and traditional → simplified."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from glmkit.data.clean import Cleaner, CleanOptions, clean_text, normalize_width
from glmkit.errors import InvalidRequestError


def test_html_is_stripped_to_its_visible_text() -> None:
    page = (
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
        "<nav>首页 | 新闻</nav><h1>退款政策</h1><p>七天内<b>无理由</b>退款&nbsp;&amp;换货。</p>"
        "<ul><li>第一条</li><li>第二条</li></ul><footer>页脚</footer></body></html>"
    )
    assert clean_text(page) == "退款政策\n七天内无理由退款 &换货。\n第一条\n第二条"
    assert clean_text(page, multiline=False) == "退款政策 七天内无理由退款 &换货。 第一条 第二条"
    assert clean_text(page, html=False).startswith("<html>")


def test_entities_are_decoded_but_urls_are_not_mangled() -> None:
    assert clean_text("A &amp; B &#20013;&#x6587;") == "A & B 中文"
    assert clean_text("见 https://a.cn/?x=1&copy=2&lang=zh") == "见 https://a.cn/?x=1&copy=2&lang=zh"
    assert clean_text("x < y and y > z") == "x < y and y > z"  # comparisons are not markup


def test_control_and_invisible_characters_are_removed() -> None:
    assert clean_text("a\x00b\x07c\u200bd\ufeffe\u202ef\u00adg") == "abcdefg"
    assert clean_text("👨\u200d👩") == "👨\u200d👩"  # the joiner of an emoji sequence stays
    assert clean_text("第一页\x0c第二页") == "第一页\n第二页"  # a form feed separates pages


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("ＡＢＣ１２３ｘｙｚ", "ABC123xyz"),
        ("你好，世界！", "你好，世界！"),  # Chinese punctuation next to Chinese stays full-width
        ("Ｈｅｌｌｏ，ｗｏｒｌｄ！", "Hello,world!"),  # nothing Chinese nearby: ASCII
        ("价格：１００元（含税）", "价格：100元（含税）"),
        ("使用（ＡＢＣ）方法", "使用（ABC）方法"),
        ("（ＡＢＣ）", "(ABC)"),
        ("＃标签＃ ５０％ ａ＋ｂ＝ｃ ｘ＠ｙ．ｃｏｍ", "#标签# 50% a+b=c x@y.com"),
        ("全角\u3000空格", "全角 空格"),
        ("《书名》“引号”、顿号。", "《书名》“引号”、顿号。"),  # marks outside the full-width block: untouched
        ("他说：“好！”", "他说：“好！”"),
        ("1：2", "1:2"),
    ],
)
def test_width_rule(raw: str, clean: str) -> None:
    assert normalize_width(raw) == clean


def test_whitespace_is_normalised() -> None:
    assert clean_text("  a \t b\u00a0\u00a0c  ") == "a b c"
    assert clean_text("第一行  \r\n\r\n\r\n\r\n  第二行\r第三行") == "第一行\n\n第二行\n第三行"
    assert clean_text("第一行\n第二行", multiline=False) == "第一行 第二行"
    assert clean_text("中 文 PDF 文 本") == "中 文 PDF 文 本"
    assert clean_text("中 文 PDF 文 本", join_cjk=True) == "中文 PDF 文本"


def test_boilerplate_lines_are_dropped_and_prose_survives() -> None:
    page = "\n".join(
        [
            "会员积分每年一月清零。",
            "上一篇：积分规则",
            "分享到：微信 微博",
            "责任编辑：王五",
            "Copyright © 2024 某某公司 All Rights Reserved",
            "京ICP备12345678号-1",
            "登录 | 注册 | 帮助中心",
            "扫码关注公众号，获取更多优惠",
            "本协议的版权所有者保留修改本规则的权利，但修改前会提前三十日通过站内信和短信通知所有受影响的会员，并给出过渡安排。",
        ]
    )
    out = clean_text(page)
    assert out.split("\n") == [
        "会员积分每年一月清零。",
        "本协议的版权所有者保留修改本规则的权利，但修改前会提前三十日通过站内信和短信通知所有受影响的会员，并给出过渡安排。",
    ]
    assert clean_text(page, boilerplate=False).count("\n") == 8
    assert clean_text("版权所有 © 2024") == ""  # a record that is only boilerplate becomes empty


def test_traditional_to_simplified() -> None:
    import opencc  # noqa: F401  (a pinned dependency: a missing one must fail, not skip)
    assert clean_text("這是繁體中文，頭髮與發展。", t2s=True) == "这是繁体中文，头发与发展。"
    assert clean_text("這是繁體中文") == "這是繁體中文"  # off by default


def test_missing_opencc_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def no_opencc(name: str, package: str | None = None) -> ModuleType:
        if name == "opencc":
            raise ImportError("No module named 'opencc'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_opencc)
    with pytest.raises(InvalidRequestError, match="pip install opencc-python-reimplemented"):
        Cleaner(CleanOptions(t2s=True))
