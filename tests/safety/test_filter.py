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


def test_ordinary_text_streams_as_it_comes() -> None:
    """Nothing is held back unless it could still begin a listed word: the issue-14 complaint was a
    short answer arriving as one chunk at the end, because every stream held its last 20+ characters."""
    words: dict[str, list[str]] = {}
    for wl in default_wordlists():
        words.setdefault(wl.category, []).extend(wl.words)
    f = ContentFilter(words, "mask")
    sf = StreamFilter(f)
    pieces = ["你好", "！", "有什么", "我可以", "帮", "你的", "吗", "？"]
    outs = [sf.feed(p) for p in pieces]
    rest = sf.close()
    assert "".join(outs) + rest == "你好！有什么我可以帮你的吗？"
    assert sum(1 for o in outs if o) >= len(pieces) - 2, outs  # at most a piece or two wait for the next
    assert len(rest) <= 1
    # an English sentence: what is held is only ever the start of some listed word
    sf = StreamFilter(f)
    for p in ["The ", "weather ", "is ", "nice ", "today."]:
        sf.feed(p)
        assert sf.held <= 2, (p, sf.held)


def test_a_word_cut_anywhere_is_still_masked_or_blocked() -> None:
    f = ContentFilter(WORDS, "mask", {"drugs": "block"})
    for word in ["fuck", "百家乐", "blow job", "傻逼"]:
        text = f"前面的话{word}后面的话"
        want = f.check(text).text
        assert word not in want
        for cut in range(1, len(text)):
            out, _ = stream(f, [text[:cut], text[cut:]])
            assert out == want, (word, cut)
        out, _ = stream(f, list(text))  # one character a piece
        assert out == want
    allowing = ContentFilter({"drugs": ["大麻"]}, "block", allow=["大麻哈鱼"])
    text = "我爱吃大麻哈鱼"
    for cut in itertools.combinations(range(1, len(text)), 2):
        pieces = [text[: cut[0]], text[cut[0] : cut[1]], text[cut[1] :]]
        out, sf = stream(allowing, pieces)
        assert out == text and not sf.blocked, pieces  # the allowed phrase completes after the word
    text = "前面的话冰毒后面的话"
    for cut in range(1, len(text)):
        out, sf = stream(f, [text[:cut], text[cut:]])
        assert sf.blocked == ["drugs"] and "冰" not in out and "前面的话".startswith(out), cut


def test_streamed_equals_whole_text_with_boundaries_and_allowed_phrases() -> None:
    """A property over random texts and random chunkings: with ASCII word boundaries, overlapping words
    and allowed phrases that reach past a word on either side, the streamed output is exactly the
    whole-text output, and in block mode a prefix of it that never shows the blocked word."""
    rng = random.Random(14)
    words = {"profanity": ["ass", "asshole", "傻逼", "逼"], "drugs": ["大麻", "麻古"], "fraud": ["刷单"]}
    allow = ["class", "大麻哈鱼", "刷单词"]
    vocab = ["ass", "hole", "cl", "c", "la", "class", "傻", "逼", "大", "麻", "哈鱼", "哈", "鱼", "古", "刷", "单", "词"]
    vocab += ["大麻", "刷单", "asshole", " ", "x", "好", "1"]
    masking = ContentFilter(words, "mask", allow=allow)
    blocking = ContentFilter(words, "mask", {"drugs": "block"}, allow=allow)
    for _ in range(1500):
        text = "".join(rng.choice(vocab) for _ in range(rng.randint(0, 16)))
        cuts = list(text) if rng.random() < 0.2 else random_cuts(rng, text)
        out, sf = stream(masking, cuts)
        assert out == masking.check(text).text, (text, cuts)
        assert sorted((h.start, h.end) for h in sf.verdict().hits) == [(h.start, h.end) for h in masking.find(text)]
        out, sf = stream(blocking, cuts)
        whole = blocking.check(text)
        if whole.blocked:
            assert sf.blocked == whole.blocked and masking.check(text).text.startswith(out), (text, cuts)
            first = min(h.start for h in whole.hits if h.category == "drugs")
            assert len(out) <= first, (text, cuts, out)
        else:
            assert not sf.blocked and out == whole.text, (text, cuts)


def test_a_flag_only_filter_holds_nothing_back_and_still_finds_every_hit() -> None:
    """Flagging never changes the text, so a flag-only filter sends each piece as it comes (a held first
    piece was a whole token of time to first token, issue 14); hits are still decided only once the
    character after them is known, so the flagged events are those of the whole text."""
    rng = random.Random(15)
    words = {"profanity": ["ass", "asshole", "傻逼", "逼"], "drugs": ["大麻", "麻古"], "fraud": ["刷单"]}
    allow = ["class", "大麻哈鱼", "刷单词"]
    vocab = ["ass", "hole", "cl", "c", "la", "class", "傻", "逼", "大", "麻", "哈鱼", "鱼", "刷", "单", "词", " ", "x"]
    flagging = ContentFilter(words, "flag", allow=allow)
    assert not flagging.changes_text
    assert ContentFilter(words, "flag", {"drugs": "mask"}).changes_text
    assert not ContentFilter(words, "mask", {c: "flag" for c in words}).changes_text
    for _ in range(1500):
        text = "".join(rng.choice(vocab) for _ in range(rng.randint(0, 16)))
        pieces = list(text) if rng.random() < 0.2 else random_cuts(rng, text)
        sf = StreamFilter(flagging)
        for p in pieces:
            assert sf.feed(p) == p and sf.held == 0
        assert sf.close() == "" and not sf.blocked
        assert sorted((h.start, h.end) for h in sf.verdict().hits) == [(h.start, h.end) for h in flagging.find(text)]
    sf = StreamFilter(flagging)
    sf.feed("my ass")
    assert not sf.hits  # "ass" could still become "asshole" or "assx": not decided yet
    sf.feed("hole!")
    assert [(h.start, h.end) for h in sf.hits.values()] == [(3, 10)]
