"""Loss masks: which tokens are learned, checked against sequences spelled out by hand.

ChatGLM3 (the tiny SentencePiece tokenizer + the nine specials): after each ``<|assistant|>`` the metadata
line, the content and the token that ends the turn (``<|user|>``, ``<|observation|>``, the next
``<|assistant|>``, or ``</s>`` at the end) are learned — THUDM's finetune demo. ChatML (the Qwen2.5
template on a tiny byte-level BPE): the content and ``<|im_end|>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from train_samples import CONVERSATIONS, TOOLS

from chatglm3_tiny import TinyChatGLM3
from glmkit.errors import InvalidRequestError
from glmkit.runtime.formats import jinja  # noqa: F401  (registers the jinja format)
from glmkit.runtime.formats.base import get_format
from glmkit.runtime.tokenizers import ChatGLM3Tokenizer
from glmkit.train.masks import IGNORE, encode_conversation, pack_texts, to_messages, truncate
from glmkit.types import Message, Tool, ToolCall

L = True  # learned
N = False  # not learned


def _check(ids: list[int], labels: list[int], expected: list[tuple[int, bool]]) -> None:
    assert ids == [t for t, _ in expected]
    assert labels == [t if learned else IGNORE for t, learned in expected]


@pytest.fixture(scope="module")
def glm_tok(chatglm3_tiny: TinyChatGLM3) -> ChatGLM3Tokenizer:
    return ChatGLM3Tokenizer.from_checkpoint(chatglm3_tiny.checkpoint)


def test_chatglm3_multi_turn(glm_tok: ChatGLM3Tokenizer) -> None:
    t = glm_tok
    sp = t.special_id
    fmt = get_format("chatglm3")
    msgs = [
        Message("system", "你是助手"),
        Message("user", "你好"),
        Message("assistant", "好"),
        Message("user", "明天呢"),
        Message("assistant", "很好"),
    ]
    ex = encode_conversation(msgs, [], fmt, t, eos_id=t.eos_id)

    def turn(role: str, text: str, learned: bool, meta: str = "") -> list[tuple[int, bool]]:
        return [(sp(role), N)] + [(i, learned) for i in t.encode(meta + "\n") + t.encode(text)]

    expected = [(sp("[gMASK]"), N), (sp("sop"), N)]
    expected += turn("<|system|>", "你是助手", N)
    expected += turn("<|user|>", "你好", N)
    expected += turn("<|assistant|>", "好", L)
    expected += [(sp("<|user|>"), L), *turn("<|user|>", "明天呢", N)[1:]]  # the turn's end token is learned
    expected += [*turn("<|assistant|>", "很好", L), (2, L)]  # the last turn ends with </s>
    _check(ex.input_ids, ex.labels, expected)


def test_chatglm3_tool_call_and_consecutive_assistant_turns(glm_tok: ChatGLM3Tokenizer) -> None:
    t = glm_tok
    sp = t.special_id
    call = '```python\ntool_call(city="北京")\n```'
    msgs = [
        Message("user", "天气"),
        Message("assistant", "我查一下"),
        Message("assistant", call, metadata="get_weather"),
        Message("observation", '{"t": 25}'),
        Message("assistant", "25度"),
    ]
    ex = encode_conversation(msgs, [], get_format("chatglm3"), t, eos_id=t.eos_id)

    def body(text: str, learned: bool, meta: str = "") -> list[tuple[int, bool]]:
        return [(i, learned) for i in t.encode(meta + "\n") + t.encode(text)]

    expected = [(sp("[gMASK]"), N), (sp("sop"), N), (sp("<|user|>"), N), *body("天气", N)]
    expected += [(sp("<|assistant|>"), N), *body("我查一下", L)]
    expected += [(sp("<|assistant|>"), L), *body(call, L, "get_weather")]  # the demo learns this role token
    expected += [(sp("<|observation|>"), L), *body('{"t": 25}', N)]  # the call stops on <|observation|>
    expected += [(sp("<|assistant|>"), N), *body("25度", L), (2, L)]
    _check(ex.input_ids, ex.labels, expected)


def test_chatglm3_data_turns_render_tools_as_the_system_prompt(glm_tok: ChatGLM3Tokenizer) -> None:
    turns = CONVERSATIONS[2]["conversations"]
    msgs, tools = to_messages(turns, "chatglm3")
    assert tools == []
    assert msgs[0].content == turns[0]["content"] + "\n" + json.dumps(TOOLS, indent=4, ensure_ascii=False)
    assert msgs[2] == Message("assistant", turns[2]["content"], metadata="get_weather")
    ex = encode_conversation(msgs, tools, get_format("chatglm3"), glm_tok, eos_id=glm_tok.eos_id)
    learned = [i for i, lab in zip(ex.input_ids, ex.labels, strict=True) if lab != IGNORE]
    assert glm_tok.special_id("<|observation|>") in learned
    assert (
        glm_tok.decode_bytes(learned).decode()
        == ' get_weather\n ```python\ntool_call(city="北京")\n``` \n 北京现在25度。'
    )


# ---- a Qwen (ChatML) template ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qwen_tok(qwen2_dir: Path) -> Any:
    from transformers import AutoTokenizer

    from glmkit.runtime.backends.transformers import HFTokenizer

    hf = AutoTokenizer.from_pretrained(str(qwen2_dir))
    return HFTokenizer(hf, [hf.eos_token_id])


def _qwen_format(template: str | None = None) -> Any:
    from qwen2_tiny import CHAT_TEMPLATE

    return get_format("jinja", template=template or CHAT_TEMPLATE, eos_token="<|im_end|>")


def test_chatml_labels(qwen_tok: Any) -> None:
    tok = qwen_tok
    fmt = _qwen_format()
    msgs = [
        Message("user", "你好"),
        Message("assistant", "你好，我是助手。"),
        Message("user", "明天呢？"),
        Message("assistant", "很好"),
    ]
    ex = encode_conversation(msgs, [], fmt, tok, eos_id=tok.special_id("<|im_end|>"))
    im_start, im_end = tok.special_id("<|im_start|>"), tok.special_id("<|im_end|>")

    def text(s: str) -> list[int]:
        return tok.encode_with_specials(s)

    sysmsg = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    )
    expected = [(i, N) for i in text(sysmsg + "<|im_start|>user\n") + tok.encode("你好")]
    expected += [(i, N) for i in text("<|im_end|>\n<|im_start|>assistant\n")]
    expected += [(i, L) for i in tok.encode("你好，我是助手。")] + [(im_end, L)]
    expected += [(i, N) for i in text("\n<|im_start|>user\n") + tok.encode("明天呢？")]
    expected += [(i, N) for i in text("<|im_end|>\n<|im_start|>assistant\n")]
    expected += [(i, L) for i in tok.encode("很好")] + [(im_end, L)]
    _check(ex.input_ids, ex.labels, expected)
    assert ex.input_ids.count(im_start) == 5


def test_chatml_tool_call_turns(qwen_tok: Any) -> None:
    tok = qwen_tok
    turns = CONVERSATIONS[2]["conversations"]
    msgs, tools = to_messages(turns, "jinja")
    assert tools == [Tool(**TOOLS[0])]
    assert all(m.role != "system" for m in msgs)  # ChatGLM3's tool preamble alone: the template's own prompt
    assert msgs[1].tool_calls == (ToolCall("get_weather", {"city": "北京"}),)
    assert msgs[2] == Message("observation", '{"temperature": 25}', name="get_weather")
    ex = encode_conversation(msgs, tools, _qwen_format(), tok, eos_id=None)
    runs = _learned_runs(ex.input_ids, ex.labels)
    texts = [tok.decode_bytes(r).decode() for r in runs]
    im_end = tok.special_id("<|im_end|>")
    assert [r[-1] for r in runs] == [im_end, im_end]  # each assistant turn ends with a learned <|im_end|>
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京"}}\n</tool_call>' in texts[0]
    assert texts[1] == "北京现在25度。"  # <|im_end|> renders as no text
    assert not any("tool_response" in x or "temperature" in x or "# Tools" in x for x in texts)


def _learned_runs(ids: list[int], labels: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for k, (i, lab) in enumerate(zip(ids, labels, strict=True)):
        if lab != IGNORE:
            if k == 0 or labels[k - 1] == IGNORE:
                runs.append([])
            runs[-1].append(i)
    return runs


def test_a_template_that_rewrites_earlier_turns_is_refused(qwen_tok: Any) -> None:
    # the system prompt depends on how many messages there are: prompts are not prefixes of the whole
    template = (
        "{% if messages|length > 2 %}<|im_start|>system\nlong chat<|im_end|>\n{% endif %}"
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    msgs = [Message("user", "a"), Message("assistant", "b")]
    with pytest.raises(InvalidRequestError, match="prefix property at turn 2") as e:
        encode_conversation(msgs, [], _qwen_format(template), qwen_tok, eos_id=None)
    assert e.value.param == "chat_format"


def test_a_conversation_without_assistant_turns_is_refused(glm_tok: ChatGLM3Tokenizer) -> None:
    with pytest.raises(InvalidRequestError, match="no assistant turn"):
        encode_conversation([Message("user", "a")], [], get_format("chatglm3"), glm_tok, eos_id=2)


def test_truncate_and_pack() -> None:
    from glmkit.train.masks import Example

    ex = Example([1, 2, 3, 4], [IGNORE, 2, 3, 4])
    assert truncate(ex, 3) == Example([1, 2, 3], [IGNORE, 2, 3]) and truncate(ex, 9) is ex
    blocks = pack_texts([[5, 6, 7], [8]], block=3, eos_id=0)
    assert [b.input_ids for b in blocks] == [[5, 6, 7], [0, 8, 0]]
    assert all(b.labels == b.input_ids for b in blocks)
    assert pack_texts([[5]], block=4, eos_id=None) == []  # one token predicts nothing
