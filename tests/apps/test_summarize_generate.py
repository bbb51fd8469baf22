"""Summarization (extractive and map-reduce) and generation with checked constraints, on scripted models."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fakes import ScriptedEngine
from glmkit.apps.checkpoint import CallCache
from glmkit.apps.generate import Generator, check, poem_lines
from glmkit.apps.summarize import Summarizer, extractive, lead, pieces, prefilter
from glmkit.errors import CancelledError, InvalidRequestError
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from glmkit.types import CancelToken, TextDelta

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
    tree = [x for x in seen if x[2] != "final"]
    assert tree[0] == (0, tree[0][1], "map") and [d for d, _, _ in tree] == list(range(len(tree)))
    assert tree[-1][0] == tree[-1][1] == s.calls - 1  # every call of the tree, then the final one
    assert sum(1 for x in tree if x[2] == "map") == s.pieces + 1
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


# -- the reduction tree: budgets, a full batch, checkpoints, cancelling, the prefilter ------------------------
class CountingEngine(ScriptedEngine):
    """Replies that take a little time and differ by prompt (so that no two calls of a tree are alike),
    counting how many calls are in flight at once; the ``fail_at``-th call raises."""

    def __init__(self, reply: str, fail_at: int | None = None, delay: float = 0.01) -> None:
        super().__init__([reply], n_ctx=8192)
        self.delay, self.fail_at = delay, fail_at
        self.active = self.peak = self.calls = 0
        self.lock = threading.Lock()

    def generate(self, prompt_ids, sampling, stop_ids, cancel=None):  # type: ignore[no-untyped-def]
        with self.lock:
            self.calls += 1
            if self.fail_at is not None and self.calls == self.fail_at:
                raise RuntimeError("the engine died")
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            reply = self.tokenizer.encode(f"\n要点{sum(prompt_ids) % 9973}。")
            for n, tid in enumerate(reply):
                if n >= sampling.max_tokens or (cancel is not None and cancel.cancelled):
                    return
                yield tid
        finally:
            with self.lock:
                self.active -= 1


def counting(reply: str = "\n要点。", **kw: Any) -> tuple[EngineChatModel, CountingEngine]:
    engine = CountingEngine(reply, **kw)
    return EngineChatModel(engine, ChatGLM3Format(), name="fake"), engine


def test_partial_budgets_follow_the_share_and_every_group_fits_a_piece() -> None:
    model, _ = scripted("\nx")
    sm = Summarizer(model, piece_chars=1500)
    assert sm._budget(0.5, 300) == 375 and sm._budget(0.01, 300) == 80  # capped, floored
    assert sm._budget(0.25, 300) == 300
    parts = pieces(ARTICLE * 690, 1500)  # ~59 pieces, as in an 88k-character file
    nodes, top = sm._plan(parts, 300)
    assert len([n for n in nodes if n.level == 1]) == len(parts) >= 50
    assert max(n.level for n in nodes) >= 2
    for n in nodes:
        if n.children:
            assert sum(nodes[c].budget + 1 for c in n.children) <= 1500 and len(n.children) >= 2
            assert abs(n.share - sum(nodes[c].share for c in n.children)) < 1e-9
    assert sum(nodes[i].budget + 1 for i in top) <= 1500
    assert abs(sum(nodes[i].share for i in top) - 1) < 1e-9
    # the old fixed budget asked 375 characters of each of 58 pieces; the tree asks far fewer in all
    assert sum(n.budget for n in nodes) < 0.4 * 375 * len(parts)
    # a short document's partials share the final call's whole piece: no squeezed partials, no extra level
    for n_pieces, want in ((2, 375), (4, 374)):
        nodes, top = sm._plan(pieces(ARTICLE * 12 * n_pieces, 1500)[:n_pieces], 40)
        assert len(nodes) == len(top) == n_pieces and {n.budget for n in nodes} == {want}


def test_every_piece_is_queued_at_once_so_the_batch_stays_full() -> None:
    model, engine = counting(delay=0.03)
    seen: list[str] = []
    s = Summarizer(model, piece_chars=300, concurrency=8).summarize(
        ARTICLE * 40, progress=lambda d, t, stage: seen.append(stage)
    )
    assert s.pieces >= 16 and engine.peak == 8  # all eight sequences busy
    # a group is reduced as soon as its pieces are done, before the pieces still waiting
    first_reduce = next(i for i, x in enumerate(seen) if x.startswith("reduce"))
    last_map = max(i for i, x in enumerate(seen) if x == "map")
    assert first_reduce < last_map
    assert s.calls == engine.calls


def test_concurrency_defaults_to_the_engines_sequences() -> None:
    model, engine = counting()
    engine.n_seq_max = 6  # type: ignore[attr-defined]
    assert Summarizer(model).concurrency == 6
    plain, _ = scripted("\nx")
    assert Summarizer(plain).concurrency == 4


def test_a_killed_run_resumes_from_the_calls_that_finished(tmp_path: Path) -> None:
    text = "".join(f"这是第{i}部分。{ARTICLE}" for i in range(30))
    path = tmp_path / "ck.jsonl"
    model, _engine = counting(fail_at=9)
    with pytest.raises(RuntimeError, match="died"):
        Summarizer(model, piece_chars=300, concurrency=2, cache=CallCache(path)).summarize(text)
    kept = len(CallCache(path))
    assert 1 <= kept <= 9  # eight before the failure, and the other worker's call in flight
    with path.open("ab") as f:
        f.write(b'{"key": "torn')  # a kill in the middle of a line
    model2, engine2 = counting()
    s = Summarizer(model2, piece_chars=300, concurrency=2, cache=CallCache(path)).summarize(text)
    fresh, _ = counting()
    whole = Summarizer(fresh, piece_chars=300, concurrency=2).summarize(text)
    assert s.reused == kept and s.text == whole.text
    assert engine2.calls == whole.calls - kept  # only what had not finished was asked again
    assert len(CallCache(path)) == whole.calls - 1  # the torn line is ignored, ours start on new lines


def test_cancel_stops_the_tree_and_its_workers() -> None:
    model, engine = counting(delay=0.02)
    cancel = CancelToken()
    before = threading.active_count()

    def progress(done: int, total: int, stage: str) -> None:
        if done >= 3:
            cancel.cancel()

    with pytest.raises(CancelledError):
        Summarizer(model, piece_chars=300, concurrency=4).stream(ARTICLE * 40, progress=progress, cancel=cancel)
    assert engine.calls < 20 and threading.active_count() == before


def test_prefilter_keeps_central_sentences_and_the_model_reads_less() -> None:
    text = ARTICLE * 20
    kept = prefilter(text, 0.4)
    assert 0.3 * len(text) <= len(kept) <= 0.55 * len(text)
    sents = [x for x in kept.split("。") if x]
    assert all(x + "。" in ARTICLE for x in sents)  # whole sentences of the text
    full, _e1 = scripted("\n要点。")
    short, _e2 = scripted("\n要点。")
    a = Summarizer(full, piece_chars=400).summarize(text)
    b = Summarizer(short, piece_chars=400, prefilter=0.4).summarize(text)
    assert b.pieces < a.pieces and b.prompt_tokens < 0.7 * a.prompt_tokens
    with pytest.raises(InvalidRequestError, match="prefilter"):
        Summarizer(full, prefilter=2.0)
