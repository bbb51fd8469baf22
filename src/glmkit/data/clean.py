"""Text cleaning for Chinese-first corpora: one ``Cleaner`` applied to each record, in this order:

1. **HTML** — text that contains markup is parsed with BeautifulSoup; script, style and page chrome (nav,
   footer, aside, forms, iframes, svg) are dropped; each block element and ``<br>`` ends a line (blank
   lines and the markup's own line breaks are not kept).
   Character entities (``&amp;``, ``&#x4E2D;``) are decoded even in text without tags.
2. **Control characters** — every C0/C1 control except tab and newline, and invisible format characters
   (zero-width space, BOM, bidi embeddings/overrides, soft hyphen, word joiner) are removed. The
   zero-width (non-)joiners stay: emoji and some scripts need them.
3. **Width** — full-width ASCII letters and digits (``ＡＢＣ１２３``) become ASCII; the ideographic space
   becomes a space; full-width ASCII symbols (``＃＄％＆＊＋－．／＜＝＞＠［＼］＾＿｀｛｜｝～＂＇``) become
   ASCII.
   The marks Chinese text is written with — ``，！？：；（）`` — stay full-width when the character before or
   after them (spaces skipped) is Chinese (Han, kana, hangul or CJK punctuation), and become ASCII otherwise
   (``Ｈｅｌｌｏ，ｗｏｒｌｄ！`` → ``Hello,world!``, ``你好，世界！`` unchanged). Marks outside the full-width
   block (``。、“”《》【】…``) are never touched.
4. **Traditional → simplified** (optional) with OpenCC's ``t2s`` conversion.
5. **Whitespace** — every space-like character becomes a space, runs collapse to one, lines are stripped,
   more than one blank line in a row becomes one; a plain-text record stays on one line. Optionally, a
   space between two Chinese characters is removed (typical of text extracted from PDFs).
6. **Boilerplate** — whole lines that are page furniture (copyright notices, ICP licence numbers,
   "上一篇/下一篇", "分享到", "扫码关注", "阅读原文", "责任编辑：…", cookie banners, …) are dropped.
   Only short lines (``BOILERPLATE_MAX_CHARS``) are tested, so prose that mentions these words survives.
"""

from __future__ import annotations

import html
import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from glmkit.errors import InvalidRequestError

OPENCC_HINT = "pip install opencc-python-reimplemented==0.1.7"

# ---- HTML ----------------------------------------------------------------------------------------------
_TAG_RE = re.compile(
    r"<(?:[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?/?|/[a-zA-Z][a-zA-Z0-9-]*\s*|!--.*?--|!DOCTYPE[^<>]*)>", re.S
)
_LINE_BREAKS_RE = re.compile(r"[^\S\n]*\n\s*")
_ENTITY_RE = re.compile(r"&(?:[a-zA-Z][a-zA-Z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "iframe",
    "svg",
    "nav",
    "footer",
    "aside",
    "form",
    "select",
    "button",
)
_BLOCK_TAGS = (
    "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr",
    "section", "article", "header", "main", "blockquote", "pre", "figure", "figcaption", "hr", "title",
)  # fmt: skip


def looks_like_html(text: str) -> bool:
    return _TAG_RE.search(text) is not None


def strip_html(text: str) -> str:
    """The visible text of an HTML fragment or page; block elements end lines, table cells are spaced."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for bad in soup(list(_DROP_TAGS)):
        bad.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for cell in soup.find_all(["td", "th"]):
        cell.insert_after(" ")
    for block in soup.find_all(list(_BLOCK_TAGS)):
        block.insert_before("\n")
        block.insert_after("\n")
    return _LINE_BREAKS_RE.sub("\n", soup.get_text())  # markup's own line breaks and indentation go


def decode_entities(text: str) -> str:
    """Decode well-formed character references (``&amp;``, ``&#20013;``), never a bare ``&copy`` in a URL."""
    return _ENTITY_RE.sub(lambda m: html.unescape(m.group(0)), text)


# ---- control and invisible characters ------------------------------------------------------------------
_INVISIBLE = {
    0x00AD,  # soft hyphen
    0x180E,  # Mongolian vowel separator
    0x200B,  # zero-width space
    0x200E, 0x200F,  # left-to-right / right-to-left marks
    0x202A, 0x202B, 0x202C, 0x202D, 0x202E,  # bidi embeddings and overrides
    0x2060, 0x2061, 0x2062, 0x2063, 0x2064,  # word joiner, invisible operators
    0x2066, 0x2067, 0x2068, 0x2069,  # bidi isolates
    0xFEFF,  # BOM / zero-width no-break space
}  # fmt: skip
_BREAKS = (0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85)  # vertical tab, form feed (PDF pages), separators, NEL
_DELETE: dict[int, str | None] = {
    c: None for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if c not in (0x09, 0x0A)
}
_DELETE.update({c: "\n" for c in _BREAKS})
_DELETE.update({c: None for c in _INVISIBLE})


def remove_control(text: str) -> str:
    """Drop control characters (keeping tab and newline; form feeds and other separators become line breaks)
    and invisible format characters."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    return text.translate(_DELETE)


# ---- full width → half width ---------------------------------------------------------------------------
_CJK_PUNCT = "，！？：；（）"  # stay full-width next to Chinese
_WIDTH: dict[int, str] = {0x3000: " "}
for _cp in range(0xFF01, 0xFF5F):
    if chr(_cp) not in _CJK_PUNCT:
        _WIDTH[_cp] = chr(_cp - 0xFEE0)
_HALF = {c: chr(ord(c) - 0xFEE0) for c in _CJK_PUNCT}


def is_cjk(ch: str) -> bool:
    """Han ideographs, kana, hangul, bopomofo and CJK punctuation (``。、《》“”`` …)."""
    cp = ord(ch)
    return (
        0x3000 <= cp <= 0x303F  # CJK symbols and punctuation
        or 0x3040 <= cp <= 0x30FF  # kana
        or 0x3100 <= cp <= 0x312F  # bopomofo
        or 0x3400 <= cp <= 0x4DBF  # extension A
        or 0x4E00 <= cp <= 0x9FFF  # unified ideographs
        or 0xAC00 <= cp <= 0xD7AF  # hangul
        or 0xF900 <= cp <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= cp <= 0x3FFFF  # extensions B…
        or cp in (0x2018, 0x2019, 0x201C, 0x201D, 0x2026, 0x2014)  # ‘’“”…— as used in Chinese text
        or ch in _CJK_PUNCT
    )


def _neighbour(text: str, i: int, step: int) -> str:
    j = i + step
    while 0 <= j < len(text) and text[j] in " \t":
        j += step
    return text[j] if 0 <= j < len(text) else ""


def normalize_width(text: str) -> str:
    """Full-width letters, digits, symbols → ASCII; ``，！？：；（）`` only where no Chinese touches them."""
    text = text.translate(_WIDTH)
    if not any(c in text for c in _CJK_PUNCT):
        return text
    out = list(text)
    for i, ch in enumerate(text):
        if ch in _HALF:
            before, after = _neighbour(text, i, -1), _neighbour(text, i, 1)
            if not ((before and is_cjk(before)) or (after and is_cjk(after))):
                out[i] = _HALF[ch]
    return "".join(out)


# ---- whitespace ----------------------------------------------------------------------------------------
_SPACES_RE = re.compile(r"[^\S\n]+")  # any whitespace but newline (includes NBSP, ideographic space, tab)
_BLANKS_RE = re.compile(r"\n{3,}")
_CJK_CLASS = "[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff1f]"
_CJK_GAP_RE = re.compile(f"(?<={_CJK_CLASS}) (?={_CJK_CLASS})")


def normalize_whitespace(text: str, *, multiline: bool = True, join_cjk: bool = False) -> str:
    """One space for every run of spaces, stripped lines, at most one blank line in a row; with
    ``multiline=False`` the result is a single line. ``join_cjk`` removes a space between two Chinese
    characters (or Chinese punctuation)."""
    text = _SPACES_RE.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines) if multiline else " ".join(line for line in lines if line)
    text = _BLANKS_RE.sub("\n\n", text).strip()
    if join_cjk:
        text = _CJK_GAP_RE.sub("", text)
    return text


# ---- boilerplate ---------------------------------------------------------------------------------------
BOILERPLATE_MAX_CHARS = 50
BOILERPLATE_PATTERNS: tuple[str, ...] = (
    r".*(版权所有|保留所有权利|all rights reserved|copyright\s*(©|\(c\)|\d{4})).*",
    r"^(©|\(c\))\s*\d{4}.*",
    r".*(icp|ICP)\s*[备证]\s*[\d-]*\s*号.*",
    r".*[京津沪渝冀晋辽吉黑苏浙皖闽赣鲁豫鄂湘粤琼川贵黔云滇陕甘陇青蒙桂藏宁新港澳台]公网安备.*",
    r"^(上一篇|下一篇|上一页|下一页|上一章|下一章|返回顶部|返回首页|返回列表|回到顶部)([:：].*)?$",
    r"^(点击|点此)(这里|此处)?(查看|阅读|进入|下载|关注|订阅).{0,20}$",
    r"^(阅读原文|查看原文|展开全文|收起全文|查看更多|加载更多|更多精彩|相关阅读|相关推荐|热门推荐|猜你喜欢)[:：]?.{0,20}$",
    r"^(分享到|分享至|扫一扫|扫码|长按(识别)?二维码|长按识别|关注(我们|公众号|微信)|欢迎关注).{0,40}$",
    r"^(责任编辑|本文来源|文章来源|图片来源|原标题|免责声明|特别声明|声明)\s*[:：].*",
    r"^(?:{nav})(\s*[|｜/·丨]\s*(?:{nav}))+$".format(
        nav="登录|注册|首页|网站地图|联系我们|关于我们|隐私政策|用户协议|帮助中心|意见反馈"
    ),
    r"^(read more|click here|continue reading|share (this|on)|subscribe( now)?|sign in|log in|back to top"
    r"|skip to (main )?content)\b.{0,40}$",
    r".*\b(cookie (policy|settings|preferences)|accept (all )?cookies|we use cookies)\b.*",
)


# ---- the cleaner ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CleanOptions:
    """What ``Cleaner`` does; every step but traditional→simplified and CJK space joining is on by default."""

    html: bool = True
    """Strip HTML markup and decode character entities."""
    control: bool = True
    """Remove control and invisible format characters."""
    width: bool = True
    """Full-width → half-width, keeping Chinese punctuation next to Chinese text."""
    t2s: bool = False
    """Traditional → simplified Chinese (needs OpenCC)."""
    boilerplate: bool = True
    """Drop short lines that are page furniture."""
    join_cjk: bool = False
    """Remove a space between two Chinese characters."""
    multiline: bool = True
    """Keep line breaks (False: the result is one line, as for a plain-text record)."""
    boilerplate_patterns: Sequence[str] = field(default=BOILERPLATE_PATTERNS)


def load_t2s() -> Any:
    """OpenCC's traditional→simplified converter (either ``opencc-python-reimplemented`` or ``OpenCC``)."""
    try:
        opencc = importlib.import_module("opencc")
    except ImportError:
        raise InvalidRequestError(
            f"--t2s (traditional → simplified) needs OpenCC, which is not installed: {OPENCC_HINT}",
            param="t2s",
        ) from None
    for config in ("t2s", "t2s.json"):
        try:
            return opencc.OpenCC(config)
        except Exception:  # noqa: BLE001 - the two OpenCC packages name the config differently
            continue
    raise InvalidRequestError(f"OpenCC is installed but has no t2s conversion; reinstall it: {OPENCC_HINT}")


class Cleaner:
    """Clean one text at a time (see the module docstring for the steps and their order)."""

    def __init__(self, options: CleanOptions | None = None) -> None:
        self.options = options or CleanOptions()
        self._t2s = load_t2s() if self.options.t2s else None
        self._boilerplate = [re.compile(p, re.I) for p in self.options.boilerplate_patterns]

    def is_boilerplate(self, line: str) -> bool:
        return len(line) <= BOILERPLATE_MAX_CHARS and any(p.fullmatch(line) for p in self._boilerplate)

    def clean(self, text: str) -> str:
        o = self.options
        if o.html:
            if looks_like_html(text):
                text = strip_html(text)
            elif "&" in text:
                text = decode_entities(text)
        if o.control:
            text = remove_control(text)
        if o.width:
            text = normalize_width(text)
        if self._t2s is not None:
            text = str(self._t2s.convert(text))
        text = normalize_whitespace(text, multiline=True, join_cjk=o.join_cjk)
        if o.boilerplate and text:
            text = "\n".join(line for line in text.split("\n") if not self.is_boilerplate(line))
            text = normalize_whitespace(text)
        if not o.multiline:
            text = normalize_whitespace(text, multiline=False)
        return text


def clean_text(text: str, **options: Any) -> str:
    """``Cleaner(CleanOptions(**options)).clean(text)`` for one-off use."""
    return Cleaner(CleanOptions(**options)).clean(text)
