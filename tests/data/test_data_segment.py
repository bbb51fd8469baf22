"""Segmentation: user dictionaries stay private to a Segmenter, stop-word lists load and filter."""

from __future__ import annotations

from pathlib import Path

import jieba
import pytest

from glmkit.data.segment import BUILTIN_STOPWORDS, Segmenter, builtin_stopwords, load_stopwords
from glmkit.errors import InvalidRequestError

NEW_WORD = "云栖问答机"  # not in jieba's dictionary


@pytest.fixture(scope="module")
def plain() -> Segmenter:
    return Segmenter()


def test_builtin_lists_ship_and_skip_their_header() -> None:
    zh, en = builtin_stopwords("zh"), builtin_stopwords("en")
    assert {"的", "了", "是", "我们"} <= zh and {"the", "is", "and"} <= en
    assert len(zh) > 700 and len(en) > 1000
    assert not any(w.startswith("#") for w in zh | en)
    assert set(BUILTIN_STOPWORDS) == {"zh", "en"}


def test_user_dictionary_keeps_a_new_word_whole_without_touching_global_jieba(
    tmp_path: Path, plain: Segmenter
) -> None:
    text = f"我们发布了{NEW_WORD}"
    assert NEW_WORD not in plain.words(text)
    d = tmp_path / "user.dict"
    d.write_text(f"{NEW_WORD} 10 n\n", encoding="utf-8")
    seg = Segmenter([d])
    assert seg.words(text)[-1] == NEW_WORD
    assert NEW_WORD not in jieba.lcut(text)  # the process-wide tokenizer is unchanged


def test_several_user_dictionaries(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(f"{NEW_WORD}\n", encoding="utf-8")
    b.write_text("大模型微调平台 5\n", encoding="utf-8")
    words = Segmenter([a, b]).words(f"{NEW_WORD}接入大模型微调平台")
    assert NEW_WORD in words and "大模型微调平台" in words


def test_stop_words_are_removed_case_insensitively(tmp_path: Path) -> None:
    seg = Segmenter(stopwords=load_stopwords(["zh", "en"]))
    assert seg.words("我的模型是最好的") == ["模型", "最好"]
    assert seg.words("The model IS really fast") == ["model", "fast"]
    own = tmp_path / "stop.txt"
    own.write_text("# my list\n模型\n\n", encoding="utf-8")
    assert Segmenter(stopwords=load_stopwords([str(own)])).segment("我的模型 很好") == "我 的 很 好"


def test_segment_joins_with_spaces_and_keeps_line_breaks(plain: Segmenter) -> None:
    assert plain.segment("我爱北京天安门\n今天 天气好") == "我 爱 北京 天安门\n今天 天气 好"
    assert plain.segment("") == ""


def test_bad_inputs_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="neither a built-in list"):
        load_stopwords(["fr"])
    with pytest.raises(InvalidRequestError, match="no such file"):
        Segmenter([tmp_path / "missing.dict"])
    bad = tmp_path / "bad.dict"
    bad.write_bytes("词语 10 n\n".encode("gbk"))  # jieba reads user dictionaries as UTF-8 only
    with pytest.raises(InvalidRequestError, match=r"bad\.dict.*utf-8"):
        Segmenter([bad])
