"""Summarization (extractive and map-reduce) and generation with checked constraints, on scripted models."""

from __future__ import annotations

import pytest

from fakes import ScriptedEngine
from glmkit.apps.generate import Generator, check, poem_lines
from glmkit.apps.summarize import Summarizer, extractive, lead
from glmkit.errors import InvalidRequestError
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from glmkit.types import TextDelta

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


# -- length, strategies, concurrency, limits --------------------------------------------------------------
def test_refine_reads_pieces_in_order_and_carries_the_summary() -> None:
    model, engine = scripted("\n长城是防御工程。")
    s = Summarizer(model, piece_chars=400).summarize(ARTICLE * 8, strategy="refine", sentences=2)
    assert s.strategy == "refine" and s.calls == s.pieces == len(engine.prompts) >= 3
    prompts = [engine.tokenizer.decode_bytes(p).decode() for p in engine.prompts]
    assert "前文摘要" not in prompts[0] and all("【前文摘要】\n长城是防御工程。" in p for p in prompts[1:])
    assert all("用2句话" in p for p in prompts)


def test_map_calls_run_concurrently_with_progress() -> None:
    model, engine = scripted("\n要点。")
    seen: list[tuple[int, int, str]] = []
    s = Summarizer(model, piece_chars=300, concurrency=4).summarize(
        ARTICLE * 12, progress=lambda d, t, stage: seen.append((d, t, stage))
    )
    level1 = [x for x in seen if x[2] == "level 1"]
    assert level1[0][0] == 0 and level1[-1][0] == level1[-1][1] == s.pieces
    assert s.calls == len(engine.prompts) and seen[-1][2] == "final"


def test_a_piece_that_overflows_the_context_is_halved() -> None:
    engine = ScriptedEngine(["\n要点。"], n_ctx=1500)
    model = EngineChatModel(engine, ChatGLM3Format(), name="fake")
    s = Summarizer(model, piece_chars=1500, concurrency=1).summarize(ARTICLE * 8)
    assert s.text == "要点。" and s.calls > s.pieces  # each overflowing piece became two calls


def test_size_limits_and_binary_text_get_clear_errors() -> None:
    from glmkit.apps.summarize import MAX_LLM_INPUT_CHARS
    from glmkit.errors import PayloadTooLargeError

    model, engine = scripted("\nx")
    with pytest.raises(PayloadTooLargeError, match="extractive"):
        Summarizer(model).summarize("长" * (MAX_LLM_INPUT_CHARS + 1))
    with pytest.raises(InvalidRequestError, match="binary"):
        Summarizer(model).summarize("abc\x00def")
    with pytest.raises(InvalidRequestError, match="sentences"):
        Summarizer(model).summarize("文本。", sentences=0)
    assert engine.prompts == []  # nothing reached the model


def test_extractive_scales_window_by_window() -> None:
    import random

    rng = random.Random(0)
    words = ["长城", "运河", "故宫", "游客", "历史", "修建", "皇帝", "百姓", "城墙", "文化", "遗产", "山海关"]
    text = "".join("".join(rng.choice(words) for _ in range(6)) + "。" for _ in range(3000))
    picked = extractive(text, 3)
    assert picked.count("。") == 3 and all(s + "。" in text for s in picked.split("。")[:3])


# -- templates ---------------------------------------------------------------------------------------------
def test_user_templates_add_and_override_kinds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from glmkit.apps.generate import load_templates

    (tmp_path / "slogan.yaml").write_text("description: 口号\nprompt: 为{topic}写一句口号。{controls}\n", "utf-8")
    (tmp_path / "ad.yaml").write_text("prompt: 广告：{topic}，{length}。\ndefault_length: 三十字\n", "utf-8")
    t = load_templates(tmp_path)
    assert {"poem", "story", "article", "ad", "product", "slogan"} <= set(t)
    assert t["ad"].prompt.startswith("广告") and t["ad"].source.endswith("ad.yaml")
    model, engine = scripted("\n好口号。")
    g = Generator(model, t).generate("slogan", "节约用水", keywords=["水"], retries=0)
    assert "为节约用水写一句口号。必须包含这些词：水。" in engine.tokenizer.decode_bytes(engine.prompts[0]).decode()
    assert g.ok is False and "水" in g.problems[0]  # the draft lacks the keyword and says so
    from glmkit.errors import NotFoundError

    with pytest.raises(NotFoundError, match="kind must be one of"):
        Generator(model, t).generate("sonnet", "春")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("prompt: 写{topic}{topic.__class__}\n", "unknown placeholder"),
        ("prompt: 没有主题\n", "topic"),
        ("prompt: 写{topic}\ncolour: red\n", "unknown key"),
        ("prompt: 写{topic}\nmax_tokens: 0\n", "max_tokens"),
        ("- not\n- a mapping\n", "mapping"),
        ("prompt: '写{topic}{x'\n", "not a valid template"),
    ],
)
def test_bad_templates_name_the_file_and_the_problem(tmp_path, body: str, error: str) -> None:  # type: ignore[no-untyped-def]
    from glmkit.apps.generate import load_templates

    (tmp_path / "bad.yaml").write_text(body, "utf-8")
    with pytest.raises(InvalidRequestError, match=error) as e:
        load_templates(tmp_path)
    assert "bad.yaml" in e.value.message


def test_forty_keywords_in_a_quatrain_is_refused() -> None:
    model, engine = scripted("\nx")
    with pytest.raises(InvalidRequestError, match="cannot fit a 五言绝句 of 20 characters"):
        Generator(model).generate("poem", "春", form="五言绝句", keywords=[f"词{i}" for i in range(40)])
    with pytest.raises(InvalidRequestError, match="form applies to poems only"):
        Generator(model).generate("ad", "奶茶", form="五言绝句")
    assert engine.prompts == []


def test_the_final_summary_keeps_to_the_length_asked_for() -> None:
    rambling = "\n" + "长城是古代的军事防御工程，" * 3 + "东起山海关。" + "它也是世界文化遗产，每年有很多游客。" * 20
    model, _ = scripted(rambling)
    s = Summarizer(model).summarize(ARTICLE, max_chars=50)
    # 45 characters end a sentence; the next sentence would end past 50 + 20%: it is dropped whole
    assert s.trimmed and s.text == "长城是古代的军事防御工程，" * 3 + "东起山海关。"
    deltas: list[str] = []
    summary, stream = Summarizer(model).stream(ARTICLE, max_chars=50)
    for d in stream:
        if isinstance(d, TextDelta):
            deltas.append(d.text)
    assert "".join(deltas).strip() == summary.text == s.text  # what streamed is what was kept
    assert summary.completion_tokens > len(s.text) // 2  # the whole call is still counted

    two = Summarizer(model).summarize(ARTICLE, sentences=2)
    assert two.text.count("。") == 2 and two.text.endswith("。") and two.trimmed

    english, _ = scripted("\nThe wall was built in 200 BC. It is long. Many visit it. Tourists love it.")
    en = Summarizer(english).summarize(ARTICLE, sentences=2, language="English")
    assert en.text == "The wall was built in 200 BC. It is long." and en.trimmed

    short, _ = scripted("\n长城是防御工程。它很长")  # an unterminated last sentence is kept
    kept = Summarizer(short).summarize(ARTICLE, max_chars=50)
    assert kept.text == "长城是防御工程。它很长" and not kept.trimmed

    one_long, _ = scripted("\n" + "长" * 200)  # no sentence end at all: cut at the hard limit
    cut = Summarizer(one_long).summarize(ARTICLE, max_chars=50)
    assert cut.text == "长" * 60 and cut.trimmed
