"""The glmkit CLI as a user runs it (a subprocess), on the real embedded model."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def glmkit(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "glmkit", *args], input=stdin, capture_output=True, text=True, timeout=300
    )


def test_one_shot_json() -> None:
    r = glmkit(
        "chat",
        "-q",
        "1+1等于几？只回答数字。",
        "--temperature",
        "0",
        "--max-tokens",
        "16",
        "--threads",
        "1",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "2" in out["text"] and out["finish_reason"] == "stop" and out["usage"]["completion_tokens"] > 0


def test_one_shot_tool_call_json() -> None:
    tools = str(ROOT / "docs/examples/weather_tools.json")
    r = glmkit(
        "chat",
        "-q",
        "北京今天天气怎么样？",
        "--tools",
        tools,
        "--temperature",
        "0",
        "--threads",
        "1",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["finish_reason"] == "tool_calls"
    assert (
        out["tool_calls"][0]["name"] == "get_weather" and out["tool_calls"][0]["arguments"]["city"] == "北京"
    )


def test_interactive_multi_turn_from_stdin() -> None:
    r = glmkit(
        "chat",
        "--temperature",
        "0",
        "--max-tokens",
        "24",
        "--threads",
        "1",
        "--system",
        "你是一个简洁的助手",
        stdin="我叫小明，请记住。\n我叫什么名字？\n/exit\n",
    )
    assert r.returncode == 0, r.stderr
    assert "小明" in r.stdout.split("\n", 1)[1]  # the second answer remembers the first turn


def test_prompt_command_prints_chatglm3_tokens(tmp_path: Path) -> None:
    msgs = tmp_path / "m.json"
    msgs.write_text(
        json.dumps([{"role": "system", "content": "你是助手"}, {"role": "user", "content": "你好"}])
    )
    r = glmkit("prompt", "--format", "chatglm3", "--messages", str(msgs))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[gMASK]sop<|system|>\n你是助手<|user|>\n你好<|assistant|>\n"
    r = glmkit(
        "prompt",
        "--format",
        "chatglm3",
        "--messages",
        str(msgs),
        "--tools",
        str(ROOT / "docs/examples/weather_tools.json"),
        "--json",
    )
    out = json.loads(r.stdout)
    assert out["text"].startswith("[gMASK]sop<|system|>\nAnswer the following questions as best as you can.")
    assert '"name": "get_weather"' in out["text"] and '"type": "function"' not in out["text"]


def test_models_json_lists_the_embedded_model() -> None:
    r = glmkit("models", "--json")
    rows = json.loads(r.stdout)
    assert (
        rows[0]["name"] == "qwen2.5-coder-0.5b"
        and rows[0]["size_bytes"] == 491_400_064
        and rows[0]["default"]
    )


def test_errors_are_one_clear_line(tmp_path: Path) -> None:
    r = glmkit("chat", "-m", "no-such-model", "-q", "hi")
    assert r.returncode == 1 and "unknown model 'no-such-model'" in r.stderr and "Traceback" not in r.stderr
    r = glmkit("chat", "-q", "hi", "--temperature", "9")
    assert r.returncode == 1 and "temperature must be within [0, 2]" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('[{"role": "user", "content": 1}]')
    r = glmkit("prompt", "--format", "chatglm3", "--messages", str(bad), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["error"]["param"] == "messages[0].content"
    bad.write_text("{oops")
    r = glmkit("prompt", "--format", "chatglm3", "--messages", str(bad))
    assert r.returncode == 1 and "not valid JSON: line 1" in r.stderr
    r = glmkit("prompt", "--format", "nope", "--messages", str(bad))
    assert r.returncode == 1
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"type": "function", "function": {"name": "bad name"}}]))
    r = glmkit("chat", "-q", "hi", "--tools", str(tools))
    assert r.returncode == 1 and "tools[0].function.name" in r.stderr
