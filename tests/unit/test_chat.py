import pytest

from fakes import CharTokenizer, ScriptedEngine
from glmkit.errors import ContextOverflowError, InvalidRequestError
from glmkit.runtime.chat import EngineChatModel, collect
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from glmkit.runtime.formats.tools import normalize_tools
from glmkit.types import CancelToken, FinishDelta, Message, SamplingParams, TextDelta, UsageDelta

TOK = CharTokenizer()
U = [Message("user", "你好")]
GREEDY = SamplingParams(temperature=0)


def model(*script: str | int, n_ctx: int = 4096) -> EngineChatModel:
    return EngineChatModel(ScriptedEngine(script, n_ctx=n_ctx), ChatGLM3Format())


def test_stream_order_text_usage_finish() -> None:
    m = model("\n你好！", TOK.special["<|user|>"], "never")
    deltas = list(m.stream(U, params=GREEDY))
    assert isinstance(deltas[-1], FinishDelta) and deltas[-1].reason == "stop"
    assert isinstance(deltas[-2], UsageDelta)
    assert deltas[-2].prompt_tokens == len(m.prompt_ids(U)) and deltas[-2].completion_tokens == 4
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "你好！"


def test_max_tokens_gives_length() -> None:
    res = collect(model("\n" + "一二三四五六七八九十" * 3).stream(U, params=SamplingParams(max_tokens=5)))
    assert res.finish_reason == "length" and res.completion_tokens == 5 and res.text == "一二三四"


def test_temperature_zero_is_kept_not_defaulted() -> None:
    assert SamplingParams(temperature=0).resolved().temperature == 0.0
    assert SamplingParams(temperature=0).resolved().greedy


def test_stop_string() -> None:
    res = collect(model("\n答案是42。END后面不要").stream(U, params=SamplingParams(stop=("END",))))
    assert res.text == "答案是42。" and res.finish_reason == "stop"


def test_loop_detector_ends_looping_generation() -> None:
    res = collect(model("\n" + "我爱北京天安门。" * 100).stream(U, params=SamplingParams(max_tokens=600)))
    assert res.finish_reason == "loop"
    assert res.completion_tokens < 200


def test_loop_detection_can_be_switched_off() -> None:
    res = collect(
        model("\n" + "我爱北京。" * 100).stream(U, params=SamplingParams(max_tokens=300, detect_loops=False))
    )
    assert res.finish_reason == "length"


def test_cancel_mid_stream() -> None:
    cancel = CancelToken()
    m = model("\n" + "字" * 100)
    got = []
    for d in m.stream(U, params=GREEDY, cancel=cancel):
        if isinstance(d, TextDelta):
            got.append(d.text)
            if len(got) == 3:
                cancel.cancel()
        if isinstance(d, FinishDelta):
            assert d.reason == "cancelled"
    assert len(got) <= 4


def test_tool_call_gets_id_and_finish_reason() -> None:
    tools = normalize_tools(
        [{"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}]
    )
    m = model("f\n```python\ntool_call(x=1)\n```", TOK.special["<|observation|>"])
    res = collect(m.stream(U, tools=tools, params=GREEDY))
    assert res.finish_reason == "tool_calls"
    (call,) = res.tool_calls
    assert call.name == "f" and call.arguments == {"x": 1} and call.id.startswith("call_")


def test_prompt_longer_than_context() -> None:
    with pytest.raises(ContextOverflowError, match="context holds 16"):
        model("x", n_ctx=16).stream([Message("user", "长" * 50)])


def test_max_tokens_beyond_context_is_an_error_but_default_is_clipped() -> None:
    m = model("\n" + "字" * 100, n_ctx=40)
    with pytest.raises(ContextOverflowError, match="max_tokens=500"):
        m.stream(U, params=SamplingParams(max_tokens=500))
    res = collect(m.stream(U, params=SamplingParams(detect_loops=False)))
    assert res.finish_reason == "length" and res.completion_tokens == 40 - len(m.prompt_ids(U))


@pytest.mark.parametrize(
    "msgs, needle",
    [
        ([], "must not be empty"),
        ([Message("wizard", "x")], "role must be one of"),  # type: ignore[arg-type]
        ([Message("user", "hi"), Message("assistant", "hello")], "nothing to answer"),
        ([Message("user", "x", metadata="a\nb")], "one line"),
    ],
)
def test_malformed_messages(msgs: list[Message], needle: str) -> None:
    with pytest.raises(InvalidRequestError, match=needle):
        model("x").stream(msgs)


@pytest.mark.parametrize(
    "params, field",
    [
        (SamplingParams(temperature=-1), "temperature"),
        (SamplingParams(top_p=0), "top_p"),
        (SamplingParams(top_k=-1), "top_k"),
        (SamplingParams(max_tokens=0), "max_tokens"),
        (SamplingParams(repetition_penalty=0), "repetition_penalty"),
        (SamplingParams(seed=-3), "seed"),
    ],
)
def test_bad_sampling_values_name_the_field(params: SamplingParams, field: str) -> None:
    with pytest.raises(InvalidRequestError) as e:
        model("x").stream(U, params=params)
    assert e.value.param == field
