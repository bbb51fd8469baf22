"""Fakes that are first-class test tools: a character tokenizer and a scripted token engine."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from glmkit.runtime.protocol import EngineInfo
from glmkit.types import CancelToken, ResolvedSampling

SPECIALS = [
    "[gMASK]",
    "sop",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|im_start|>",
    "<|im_end|>",
]
BASE = 1000  # ids below are specials and 2 (</s>); a character c is BASE + ord(c)


class CharTokenizer:
    """One id per character; specials get small ids. ``encode`` never produces a special id."""

    def __init__(self) -> None:
        self.special = {s: 10 + i for i, s in enumerate(SPECIALS)}
        self.special["</s>"] = 2

    def encode(self, text: str) -> list[int]:
        return [BASE + ord(c) for c in text]

    def encode_with_specials(self, text: str) -> list[int]:
        out: list[int] = []
        i = 0
        while i < len(text):
            for s, tid in self.special.items():
                if text.startswith(s, i):
                    out.append(tid)
                    i += len(s)
                    break
            else:
                out.append(BASE + ord(text[i]))
                i += 1
        return out

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        return "".join(chr(i - BASE) for i in ids if i >= BASE).encode("utf-8")

    def special_id(self, token: str) -> int | None:
        return self.special.get(token)

    @property
    def special_texts(self) -> Sequence[str]:
        return list(self.special)

    def is_eog(self, token_id: int) -> bool:
        return token_id == 2


class ScriptedEngine:
    """Replays a scripted reply (text and special tokens) as ids, honouring stop ids and max_tokens."""

    def __init__(self, script: Sequence[str | int] = (), n_ctx: int = 256) -> None:
        self.tokenizer = CharTokenizer()
        self.info = EngineInfo(name="scripted", backend="fake", n_ctx=n_ctx)
        self.script = list(script)
        self.prompts: list[list[int]] = []
        self.closed = False

    def ids(self) -> list[int]:
        out: list[int] = []
        for part in self.script:
            out += [part] if isinstance(part, int) else self.tokenizer.encode(part)
        return out

    def generate(
        self,
        prompt_ids: Sequence[int],
        sampling: ResolvedSampling,
        stop_ids: frozenset[int],
        cancel: CancelToken | None = None,
    ) -> Iterator[int]:
        self.prompts.append(list(prompt_ids))
        for n, tid in enumerate(self.ids()):
            if n >= sampling.max_tokens or (cancel is not None and cancel.cancelled):
                return
            if tid in stop_ids:
                return
            yield tid

    def close(self) -> None:
        self.closed = True
