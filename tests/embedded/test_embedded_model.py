"""End to end on the real embedded model (Qwen2.5-Coder-0.5B GGUF through llama.cpp)."""

import re
import threading
import time

import numpy as np
import pytest

from glmkit.errors import ContextOverflowError
from glmkit.runtime.backends.llamacpp import LlamaEngine
from glmkit.runtime.chat import EngineChatModel, collect
from glmkit.runtime.formats.tools import normalize_tools
from glmkit.types import CancelToken, FinishDelta, Message, SamplingParams, TextDelta

CJK = re.compile(r"[\u4e00-\u9fff]")
GREEDY = SamplingParams(temperature=0, max_tokens=48)
WEATHER = normalize_tools(
    [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "查询指定城市今天的天气",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "城市名"}},
                    "required": ["city"],
                },
            },
        }
    ]
)


def test_chinese_question_gets_chinese_answer(qwen: EngineChatModel) -> None:
    res = collect(qwen.stream([Message("user", "中国的首都是哪个城市？请用中文回答。")], params=GREEDY))
    assert len(CJK.findall(res.text)) >= 4, res.text
    assert "北京" in res.text
    assert res.finish_reason in ("stop", "length") and res.completion_tokens > 0


def test_temperature_zero_gives_same_text_twice(qwen: EngineChatModel) -> None:
    msgs = [Message("user", "写一句关于春天的话。")]
    a = collect(qwen.stream(msgs, params=GREEDY))
    b = collect(qwen.stream(msgs, params=GREEDY))
    assert a.text and a.text == b.text


def test_seeded_sampling_repeats_and_differs_across_seeds(qwen: EngineChatModel) -> None:
    msgs = [Message("user", "随便说一个水果的名字和它的颜色。")]
    runs = [
        collect(qwen.stream(msgs, params=SamplingParams(temperature=1.2, seed=s, max_tokens=24))).text
        for s in (1, 1, 2, 3)
    ]
    assert runs[0] == runs[1]
    assert len(set(runs)) >= 2


def test_tool_call_round_trip(qwen: EngineChatModel) -> None:
    msgs = [Message("user", "北京今天天气怎么样？")]
    first = collect(qwen.stream(msgs, tools=WEATHER, params=SamplingParams(temperature=0, max_tokens=96)))
    assert first.finish_reason == "tool_calls", first
    (call,) = first.tool_calls
    assert call.name == "get_weather" and "北京" in call.arguments["city"]
    msgs += [
        Message("assistant", first.text, tool_calls=(call,)),
        Message(
            "observation",
            '{"city": "北京", "weather": "晴", "temperature": "23°C"}',
            name=call.name,
            tool_call_id=call.id,
        ),
    ]
    final = collect(qwen.stream(msgs, tools=WEATHER, params=SamplingParams(temperature=0, max_tokens=96)))
    assert final.finish_reason == "stop" and not final.tool_calls
    assert "23" in final.text or "晴" in final.text, final.text


def test_batched_logits_match_alone_position_by_position(qwen: EngineChatModel) -> None:
    """Teacher-forced, so deterministic: each row of a shared batch gives its own sequence's logits.

    llama.cpp's kernels depend on batch shape, so batched logits differ from a lone decode by float
    rounding (measured up to ~0.4 here); a sequence reading another's KV would differ by far more.
    """
    engine = qwen.engine
    assert isinstance(engine, LlamaEngine)
    tok = engine.tokenizer
    a = tok.encode_with_specials(
        "<|im_start|>user\n用一句话介绍长城。<|im_end|>\n<|im_start|>assistant\n长城是中国古代重要的军事防御"
    )
    b = tok.encode_with_specials(
        "<|im_start|>user\nName three colors.<|im_end|>\n<|im_start|>assistant\nThree colors are"
    )
    for cut in (len(a), len(a) - 4, len(a) - 9):
        alone_a, alone_b = np.array(engine.logits(a[:cut])), np.array(engine.logits(b))
        both_a, both_b = map(np.array, engine.logits_together([a[:cut], b]))
        for both, alone in ((both_a, alone_a), (both_b, alone_b)):
            diff = np.abs(both - alone).max()
            assert diff < 1.0
            # the batched best token is the lone decode's best, or ties with it within the rounding: on
            # some CPUs two tokens sit 0.05 apart at the top, and rounding of that size may swap them
            assert alone[both.argmax()] >= alone.max() - 2 * diff, (both.argmax(), alone.argmax(), diff)
        # the check has teeth: the other sequence's logits are far away
        assert np.abs(both_a - alone_b).max() > 5.0


def test_two_streams_overlap_and_each_answers_its_own_question(qwen: EngineChatModel) -> None:
    prompts = [[Message("user", "用一句话介绍长城。")], [Message("user", "Name three colors.")]]
    texts: list[str] = ["", ""]
    seen: list[list[float]] = [[], []]

    def run(i: int) -> None:
        for d in qwen.stream(prompts[i], params=GREEDY):
            if isinstance(d, TextDelta):
                texts[i] += d.text
                seen[i].append(time.monotonic())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert "长城" in texts[0] and len(CJK.findall(texts[0])) >= 8, texts[0]
    assert not CJK.search(texts[1]) and "red" in texts[1].lower(), texts[1]
    # decoded together: each stream produced text while the other was still producing
    assert seen[0][0] < seen[1][-1] and seen[1][0] < seen[0][-1]


def test_cancel_and_abandon_free_the_slot(qwen: EngineChatModel, caplog: pytest.LogCaptureFixture) -> None:
    cancel = CancelToken()
    n = 0
    reason = None
    for d in qwen.stream(
        [Message("user", "从1数到100，用逗号分开。")],
        params=SamplingParams(temperature=0, max_tokens=300),
        cancel=cancel,
    ):
        if isinstance(d, TextDelta):
            n += 1
            if n == 3:
                cancel.cancel()
        if isinstance(d, FinishDelta):
            reason = d.reason
    assert reason == "cancelled" and n <= 5
    stream = qwen.stream([Message("user", "讲个故事")], params=SamplingParams(max_tokens=200))
    next(stream)
    stream.close()  # abandoned consumer
    # both slots are free again: a normal request completes
    assert collect(qwen.stream([Message("user", "你好")], params=GREEDY)).completion_tokens > 0
    # dropping the only running sequence leaves nothing to decode: no empty batch reaches llama_decode
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


def test_prompt_longer_than_context_is_a_clear_error(qwen: EngineChatModel) -> None:
    with pytest.raises(ContextOverflowError, match="context holds 2048"):
        qwen.stream([Message("user", "很长的文字。" * 2000)])
