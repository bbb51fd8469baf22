"""The tiny ChatGLM3 through the user-facing paths: load_chat_model on a checkpoint dir and on its GGUF,
and `glmkit prompt --ids` with its tokenizer."""

import json
import subprocess
import sys
from pathlib import Path

from chatglm3_tiny import TinyChatGLM3
from glmkit.runtime.chat import EngineChatModel, collect
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format
from glmkit.runtime.loaders import load_chat_model
from glmkit.runtime.tokenizers import ChatGLM3Tokenizer
from glmkit.settings import Settings
from glmkit.types import Message, SamplingParams

MSGS = [Message("system", "你是助手"), Message("user", "你好，<|user|> isopropyl")]


def test_checkpoint_dir_and_gguf_load_as_chatglm3_and_agree(chatglm3_tiny: TinyChatGLM3) -> None:
    s = Settings(n_threads=1, n_ctx=256)
    greedy = SamplingParams(temperature=0, max_tokens=12, repetition_penalty=1.0, detect_loops=False)
    texts = []
    for spec in (chatglm3_tiny.checkpoint, chatglm3_tiny.gguf):
        model = load_chat_model(str(spec), s)
        assert isinstance(model, EngineChatModel) and model.format.name == "chatglm3"
        try:
            res = collect(model.stream(MSGS, params=greedy))
            assert res.completion_tokens > 0 and res.finish_reason in ("stop", "length")
            texts.append((res.text, res.completion_tokens))
        finally:
            model.close()
    assert texts[0] == texts[1]


def test_prompt_ids_from_the_cli_match_the_format(chatglm3_tiny: TinyChatGLM3, tmp_path: Path) -> None:
    msgs = tmp_path / "m.json"
    msgs.write_text(json.dumps([{"role": m.role, "content": m.content} for m in MSGS], ensure_ascii=False))
    want = ChatGLM3Format().render_ids(MSGS, [], ChatGLM3Tokenizer.from_checkpoint(chatglm3_tiny.checkpoint))
    for tok in (chatglm3_tiny.checkpoint, chatglm3_tiny.gguf):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "glmkit",
                "prompt",
                "--format",
                "chatglm3",
                "--messages",
                str(msgs),
                "--ids",
                "--tokenizer",
                str(tok),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["ids"] == want
