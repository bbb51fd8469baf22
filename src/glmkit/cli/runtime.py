"""``glmkit chat``, ``glmkit models`` and ``glmkit prompt``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError, ModelLoadError
from glmkit.types import (
    ChatResult,
    FinishDelta,
    Message,
    SamplingParams,
    TextDelta,
    Tool,
    ToolCallDelta,
    ToolCallErrorDelta,
    UsageDelta,
)


def register(sub: Any) -> None:
    chat = sub.add_parser("chat", help="chat with a model (interactive, or one-shot with -q)")
    add_model_args(chat)
    chat.add_argument("-q", "--query", help="ask one question, print the answer and exit")
    chat.add_argument("--system", help="system prompt")
    chat.add_argument("--tools", type=Path, help="JSON file with a list of tools (ChatGLM3 or OpenAI form)")
    add_sampling_args(chat)
    chat.add_argument("--json", action="store_true", help="with -q: print the result as JSON")
    chat.set_defaults(func=cmd_chat)

    models = sub.add_parser("models", help="list models, or prepare the embedded ones")
    models.add_argument("action", nargs="?", choices=["list", "prepare"], default="list")
    models.add_argument(
        "name", nargs="?", help="with prepare: one embedded model (default: the default model)"
    )
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)

    prompt = sub.add_parser("prompt", help="print exactly what the model would see for some messages")
    prompt.add_argument("--format", required=True, help="chat format: chatglm3, or jinja with --template")
    prompt.add_argument("--messages", type=Path, required=True, help="JSON file: a list of {role, content}")
    prompt.add_argument("--tools", type=Path, help="JSON file: a list of tools")
    prompt.add_argument("--template", type=Path, help="jinja chat template file (for --format jinja)")
    prompt.add_argument("--ids", action="store_true", help="print token ids (needs --tokenizer)")
    prompt.add_argument(
        "--tokenizer", type=Path, help="tokenizer.model, a checkpoint directory, or a .gguf (for --ids)"
    )
    prompt.add_argument("--json", action="store_true")
    prompt.set_defaults(func=cmd_prompt)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--model", help="embedded name, .gguf path, checkpoint dir, or openai:URL#name")
    p.add_argument("--format", dest="chat_format", help="force a chat format (chatglm3, jinja)")
    p.add_argument("--threads", type=int, dest="n_threads", help="decode threads")
    p.add_argument("--ctx", type=int, dest="n_ctx", help="context window in tokens")


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--repetition-penalty", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def settings_from(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from glmkit.settings import Settings

    keys = ["model", "chat_format", "n_threads", "n_ctx", "host", "port", "parallel", "cors_origins"]
    keys += ["max_body_bytes", "rate_limit_rpm", "request_timeout", "bots", "lora"]
    given = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    try:
        return Settings(**given)
    except ValidationError as e:
        err = e.errors()[0]
        raise InvalidRequestError(f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def sampling_from(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_tokens=args.max_tokens,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
        stop=tuple(args.stop),
    )


def read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidRequestError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidRequestError(f"cannot read {what} file {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise InvalidRequestError(f"{what} file {path} is not valid JSON: line {e.lineno}: {e.msg}") from e


def load_tools(path: Path | None) -> list[Tool]:
    from glmkit.runtime.formats.tools import normalize_tools

    if path is None:
        return []
    raw = read_json_file(path, "tools")
    if not isinstance(raw, list):
        raise InvalidRequestError(f"tools file {path} must hold a JSON list")
    return normalize_tools(raw)


def cmd_chat(args: argparse.Namespace) -> int:
    from glmkit.runtime.chat import collect
    from glmkit.runtime.loaders import load_chat_model

    settings = settings_from(args)
    params = sampling_from(args)
    params.resolved()  # reject bad values before loading a model
    tools = load_tools(args.tools)
    history: list[Message] = [Message("system", args.system)] if args.system else []
    model = load_chat_model(settings=settings)
    try:
        if args.query is not None:
            msgs = [*history, Message("user", args.query)]
            if args.json:
                res = collect(model.stream(msgs, tools=tools, params=params))
                print(json.dumps(result_to_json(res, model.name), ensure_ascii=False))
            else:
                print_stream(model.stream(msgs, tools=tools, params=params))
            return 0
        return interactive(model, history, tools, params)
    finally:
        model.close()


def result_to_json(res: ChatResult, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "text": res.text,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in res.tool_calls],
        "tool_call_errors": [{"raw": e.raw, "error": e.error} for e in res.tool_call_errors],
        "finish_reason": res.finish_reason,
        "usage": {"prompt_tokens": res.prompt_tokens, "completion_tokens": res.completion_tokens},
    }


def print_stream(stream: Any, out: Any = None) -> tuple[str, list[Any], str]:
    out = out or sys.stdout
    text: list[str] = []
    calls: list[Any] = []
    reason = "stop"
    for d in stream:
        if isinstance(d, TextDelta):
            text.append(d.text)
            out.write(d.text)
            out.flush()
        elif isinstance(d, ToolCallDelta):
            calls.append(d.call)
            out.write(f"\n[tool call] {d.call.name}({json.dumps(d.call.arguments, ensure_ascii=False)})")
        elif isinstance(d, ToolCallErrorDelta):
            out.write(f"\n[malformed tool call] {d.error}")
        elif isinstance(d, FinishDelta):
            reason = d.reason
            if d.reason in ("length", "loop", "cancelled"):
                out.write(f"\n[stopped: {d.reason}]")
        elif isinstance(d, UsageDelta):
            pass
    out.write("\n")
    out.flush()
    return "".join(text), calls, reason


HELP = "commands: /reset clears the conversation, /exit quits (or Ctrl-D)"


def interactive(model: Any, history: list[Message], tools: list[Tool], params: SamplingParams) -> int:
    from glmkit.types import CancelToken

    base = list(history)
    print(f"glmkit chat · model {model.name} · {HELP}", file=sys.stderr)
    while True:
        try:
            line = input("你> " if sys.stdin.isatty() else "")
        except EOFError:
            print("", file=sys.stderr)
            return 0
        line = line.strip()
        if not line:
            continue
        if line in ("/exit", "/quit"):
            return 0
        if line == "/reset":
            history = list(base)
            print("[conversation cleared]", file=sys.stderr)
            continue
        history.append(Message("user", line))
        cancel = CancelToken()
        try:
            text, calls, _ = print_stream(model.stream(history, tools=tools, params=params, cancel=cancel))
        except KeyboardInterrupt:
            cancel.cancel()
            print("\n[interrupted]", file=sys.stderr)
            history.pop()
            continue
        history.append(Message("assistant", text, tool_calls=tuple(calls)))
        for call in calls:
            # No tool runs on its own here: the user types the result, which goes back as an observation.
            try:
                result = input(f"result of {call.name} (JSON or text)> ")
            except EOFError:
                return 0
            history.append(Message("observation", result, name=call.name, tool_call_id=call.id))
            text, more, _ = print_stream(model.stream(history, tools=tools, params=params))
            history.append(Message("assistant", text, tool_calls=tuple(more)))


def cmd_models(args: argparse.Namespace) -> int:
    from glmkit.runtime.models import EMBEDDED, list_models, prepare_embedded
    from glmkit.settings import Settings

    settings = Settings()
    if args.action == "prepare":
        names = (
            [args.name]
            if args.name
            else [settings.model if settings.model in EMBEDDED else next(iter(EMBEDDED))]
        )
        done = []
        for name in names:
            path = prepare_embedded(name, settings.models_dir, _Progress())
            if sys.stderr.isatty():
                print("", file=sys.stderr)
            done.append({"name": name, "path": str(path), "verified": True})
            if not args.json:
                print(f"{name}: ready and verified at {path}", file=sys.stderr)
        if args.json:
            print(json.dumps(done, ensure_ascii=False))
        return 0
    rows = list(list_models(settings))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    for r in rows:
        mark = "*" if r["default"] else " "
        state = "ready" if r["prepared"] else "not prepared (glmkit models prepare)"
        print(
            f"{mark} {r['name']:<24} {r['size_bytes'] / 1e6:8.1f} MB  {r['backend']:<10} {state}  {r['path']}"
        )
    return 0


class _Progress:
    """Percent progress on a terminal; silent when stderr is not one."""

    def __init__(self) -> None:
        self.last = -1

    def __call__(self, name: str, got: int, total: int) -> None:
        pct = got * 100 // max(total, 1)
        if pct != self.last and sys.stderr.isatty():
            self.last = pct
            print(f"\rassembling {name}: {pct:3d}%", end="", file=sys.stderr, flush=True)


def cmd_prompt(args: argparse.Namespace) -> int:
    from glmkit.runtime.formats.base import get_format
    from glmkit.runtime.loaders import choose_format  # noqa: F401  (registers formats)
    from glmkit.runtime.messages import messages_from_dicts

    messages = messages_from_dicts(read_json_file(args.messages, "messages"))
    tools = load_tools(args.tools)
    if args.format == "jinja":
        if args.template is None:
            raise InvalidRequestError("--format jinja needs --template FILE")
        fmt = get_format("jinja", template=args.template.read_text(encoding="utf-8"))
    else:
        fmt = get_format(args.format)
    text = fmt.render_text(messages, tools)
    ids = None
    if args.ids:
        if args.tokenizer is None:
            raise InvalidRequestError(
                "--ids needs --tokenizer (tokenizer.model, a checkpoint dir or a .gguf)"
            )
        tok, close = open_tokenizer(args.tokenizer)
        try:
            ids = fmt.render_ids(messages, tools, tok)
        finally:
            close()
    if args.json:
        print(json.dumps({"format": fmt.name, "text": text, "ids": ids}, ensure_ascii=False))
    else:
        print(text)
        if ids is not None:
            print(" ".join(map(str, ids)))
    return 0


def open_tokenizer(path: Path) -> tuple[Any, Any]:
    if path.suffix == ".gguf":
        from glmkit.runtime.backends.llamacpp import LlamaEngine

        engine = LlamaEngine(path, n_ctx=64)
        return engine.tokenizer, engine.close
    from glmkit.runtime.tokenizers import ChatGLM3Tokenizer

    p = path / "tokenizer.model" if path.is_dir() else path
    if not p.exists():
        raise ModelLoadError(f"no tokenizer at {p}")
    return ChatGLM3Tokenizer(p), lambda: None
