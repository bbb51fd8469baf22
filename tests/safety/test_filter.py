"""The sensitive-word filter: folding, word boundaries, allowed phrases, the actions, the streamed form
(equal to the whole-text form for every way of cutting the text) and the shipped word lists."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from glmkit.safety.filter import (
    MASK_CHAR,
    WORDLISTS,
    ContentFilter,
    StreamFilter,
    default_wordlists,
    fold,
    read_wordlist,
)

WORDS = {"profanity": ["fuck", "傻逼", "blow job"], "gambling": ["网赌", "百家乐"], "drugs": ["冰毒"]}


def test_fold_keeps_offsets() -> None:
    for text in ["ＦＵＣＫ you", "İstanbul fuck", "傻逼Ａｂｃ"]:
        assert len(fold(text)) == len(text)
    assert fold("ＦＵＣＫ") == "fuck"


def test_ascii_words_need_boundaries_chinese_words_do_not() -> None:
    f = ContentFilter({"profanity": ["ass", "傻逼"]})
    assert [(h.start, h.end) for h in f.find("class assignment, ass!")] == [(18, 21)]
    assert [(h.start, h.end) for h in f.find("你这个傻逼吧")] == [(3, 5)]
    assert f.find("ASS") and f.find("ＡＳＳ")


def test_allowed_phrases_suppress_hits_inside_them() -> None:
    f = ContentFilter({"drugs": ["大麻"]}, allow=["大麻哈鱼"])
    assert f.find("我爱吃大麻哈鱼") == []
    assert len(f.find("他在卖大麻")) == 1


def test_actions_and_the_strongest_wins() -> None:
    text = "去网赌吧，傻逼，fuck"
    flag = ContentFilter(WORDS, "flag").check(text)
    assert flag.action == "flag" and flag.text == text and flag.categories == ["gambling", "profanity"]
    masked = ContentFilter(WORDS, "mask").check(text)
    assert masked.text == "去＊＊吧，＊＊，＊＊＊＊" and masked.blocked == []
    mixed = ContentFilter(WORDS, "mask", {"gambling": "block"}).check(text)
    assert mixed.action == "block" and mixed.blocked == ["gambling"]
    off = ContentFilter(WORDS, "flag", {"profanity": "off"}).check(text)
    assert off.categories == ["gambling"]
    assert ContentFilter(WORDS, "mask").check("blow job").text == "＊＊＊＊ ＊＊＊"
    with pytest.raises(Exception, match="must be one of"):
        ContentFilter(WORDS, "delete")  # type: ignore[arg-type]


def stream(f: ContentFilter, pieces: list[str]) -> tuple[str, StreamFilter]:
    sf = StreamFilter(f)
    out = "".join(sf.feed(p) for p in pieces) + sf.close()
    return out, sf


def random_cuts(rng: random.Random, text: str) -> list[str]:
    cuts = (
        sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(0, 8))))
        if len(text) > 1
        else []
    )
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def test_streamed_masking_equals_whole_text_masking_for_any_cuts() -> None:
    rng = random.Random(7)
    f = ContentFilter(WORDS, "mask")
    vocab = ["fuck", "fucker", "xfuck", "傻逼", "网赌", "百家乐", "冰毒", "blow job", " ", "你好", "a", "，"]
    for _ in range(300):
        text = "".join(rng.choice(vocab) for _ in range(rng.randint(0, 12)))
        out, sf = stream(f, random_cuts(rng, text))
        assert out == f.check(text).text, text
        assert sorted((h.start, h.end) for h in sf.verdict().hits) == [(h.start, h.end) for h in f.find(text)]


def test_streamed_block_stops_before_the_word() -> None:
    f = ContentFilter(WORDS, "flag", {"drugs": "block"})
    out, sf = stream(f, ["你好，这是一段比较长的开头文字，", "我这里有冰", "毒，要吗？还有很多内容"])
    assert sf.blocked == ["drugs"] and "冰" not in out and out.startswith("你好")


def test_shipped_wordlists_name_their_source_and_license() -> None:
    files = sorted(WORDLISTS.glob("*.txt"))
    assert len(files) >= 7
    for p in files:
        head = [line for line in p.read_text("utf-8").splitlines() if line.startswith("#")]
        assert any(line.startswith("# source:") for line in head), p.name
        assert any(re.match(r"# license: (MIT|Apache-2\.0)", line) for line in head), p.name
        assert read_wordlist(p).words, p.name
    cats = {wl.category for wl in default_wordlists()}
    assert {"profanity", "pornography", "gambling", "drugs", "violence", "fraud"} <= cats


def test_default_lists_leave_ordinary_text_alone() -> None:
    words: dict[str, list[str]] = {}
    for wl in default_wordlists():
        words.setdefault(wl.category, []).extend(wl.words)
    f = ContentFilter(words)
    for text in [
        "我想查一下订单的物流信息，谢谢",
        "This class is about classic assessment; God bless, I killed it at the gym.",
        "你干你的活，我干我的",
        "大麻哈鱼很好吃，鸦片战争是历史",
        "Please help me with my homework about Scunthorpe.",
    ]:
        assert f.find(text) == [], (text, f.find(text))
    assert {h.category for h in f.find("你个傻逼，来网赌，买冰毒")} == {"profanity", "gambling", "drugs"}
    assert MASK_CHAR == "＊"
