"""Summarization (extractive and map-reduce) and generation with checked constraints, on scripted models."""

from __future__ import annotations

import pytest

from fakes import ScriptedEngine
from glmkit.apps.generate import Generator, check, poem_lines
from glmkit.apps.summarize import Summarizer, extractive, lead
from glmkit.errors import InvalidRequestError
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format

ARTICLE = (
    "长城是中国古代的军事防御工程。它东起山海关，西至嘉峪关。长城修建的历史可以追溯到春秋战国时期。"
    "秦始皇统一中国后，把各国长城连接起来。明朝对长城进行了大规模的重修。今天的长城是世界文化遗产。"
    "每年都有大量游客来参观长城。天气晴朗的时候，站在长城上可以看得很远。"
)


def scripted(*replies: str) -> tuple[EngineChatModel, ScriptedEngine]:
    engine = ScriptedEngine([replies[0]], n_ctx=8192)
    return EngineChatModel(engine, ChatGLM3Format(), name="fake"), engine


def test_extractive_picks_central_sentences_in_order() -> None:
    picked = extractive(ARTICLE, 2)
    assert picked.count("。") == 2 and "长城" in picked
    assert ARTICLE.index(picked.split("。")[0]) < ARTICLE.index(picked.split("。")[1])
    assert lead(ARTICLE) == "长城是中国古代的军事防御工程。"
    with pytest.raises(InvalidRequestError, match="empty"):
        extractive("   ")


def test_long_documents_are_mapped_and_reduced_within_the_piece_size() -> None:
    model, engine = scripted("\n长城是古代防御工程，也是世界遗产。")
    text = ARTICLE * 60  # ~9,000 characters, far over one piece
    s = Summarizer(model, piece_chars=1500).summarize(text, mode="news")
    assert s.text == "长城是古代防御工程，也是世界遗产。"
    assert s.pieces >= 6 and s.levels >= 1
    assert len(engine.prompts) == s.pieces + 1  # one map call per piece, then the final call
    assert max(len(p) for p in engine.prompts) < 1500 + 200  # every call stayed within its piece


def test_summarize_rejects_bad_input() -> None:
    model, _ = scripted("\nx")
    with pytest.raises(InvalidRequestError, match="empty"):
        Summarizer(model).summarize("")
    with pytest.raises(InvalidRequestError, match="mode"):
        Summarizer(model).summarize("文本。", mode="poem")


def test_poem_checks() -> None:
    good = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
    assert poem_lines(good) == ["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡"]
    assert check(good, form="五言绝句", keywords=["明月"], min_chars=None, max_chars=None) == []
    problems = check(good, form="七言绝句", keywords=["秋"], min_chars=None, max_chars=None)
    assert any("7个字" in p for p in problems) and any("秋" in p for p in problems)


def test_generation_retries_until_the_form_holds() -> None:
    model, _ = scripted("\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。")
    g = Generator(model).generate("poem", "思乡", form="五言绝句", keywords=["明月"])
    assert g.ok and g.attempts == 1 and g.problems == []
    bad, engine = scripted("\n月亮很圆。")
    g = Generator(bad).generate("poem", "月亮", form="五言绝句", retries=2)
    assert not g.ok and g.attempts == 3 and len(engine.prompts) == 3
    assert "上一稿的问题" in "".join(map(str, g.history[-1].values())) or g.problems


def test_impossible_constraints_are_refused_up_front() -> None:
    model, _ = scripted("\nx")
    with pytest.raises(InvalidRequestError, match="cannot fit"):
        Generator(model).generate("poem", "春", form="五言绝句", keywords=[f"关键词{i}" for i in range(12)])
    with pytest.raises(InvalidRequestError, match="form"):
        Generator(model).generate("poem", "春", form="十言绝句")
    with pytest.raises(InvalidRequestError, match="topic"):
        Generator(model).generate("story", " ")


def test_form_grammar_spells_the_form() -> None:
    from glmkit.apps.generate import form_grammar

    g = form_grammar("七言律诗")
    assert g.count("cjk{7}") == 8 and g.count('"。"') == 4 and g.count('"，"') == 4
    assert g.endswith("cjk ::= [\u4e00-\u9fff]\n")
