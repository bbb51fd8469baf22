"""Intents without training data: the chat model picks one, constrained by a grammar to the label set, and
the confidence is read from the token log-probabilities (the bot's ``intent_model: llm``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from glmkit.apps.intent import Prediction
from glmkit.errors import InvalidRequestError


class LLMIntentClassifier:
    """Zero/few-shot intents with the chat model, for intents that have no training data: the reply is
    constrained by a grammar to one of the labels, and the confidence is the probability the model gave
    the label's tokens (from their log-probabilities; 1.0 where the backend reports none)."""

    def __init__(self, model: Any, intents: dict[str, str], examples: Sequence[tuple[str, str]] = ()) -> None:
        if len(intents) < 2:
            raise InvalidRequestError("the LLM intent classifier needs at least two intents")
        self.model = model
        self.intents = intents
        self.labels = sorted(intents)
        self.examples = list(examples)[:20]

    def classify(self, texts: Sequence[str], top: int = 3) -> list[Prediction]:
        from glmkit.runtime.chat import collect
        from glmkit.types import Constraint, LogprobDelta, Message, SamplingParams

        listing = "\n".join(f"- {lbl}: {desc}" if desc else f"- {lbl}" for lbl, desc in self.intents.items())
        shots = "\n".join(f"消息：{t}\n意图：{lbl}" for t, lbl in self.examples)
        out = []
        for t in texts:
            if not t.strip():
                raise InvalidRequestError("empty text", param="text")
            prompt = f"把用户消息归入下面一个意图，只输出意图名。\n意图：\n{listing}\n\n{shots}\n消息：{t[:1000]}\n意图："
            schema = json.dumps({"type": "string", "enum": self.labels})
            info = getattr(getattr(self.model, "engine", None), "info", None)
            can_score = info is not None and "logprobs" in info.features
            params = SamplingParams(
                temperature=0,
                max_tokens=24,
                constraint=Constraint("json_schema", schema),
                logprobs=20 if can_score else None,
            )
            deltas = list(self.model.stream([Message("user", prompt)], params=params))
            label, parsed = self._label(collect(iter(deltas)).text)
            scored = [tok for d in deltas if isinstance(d, LogprobDelta) for tok in d.tokens]
            conf = self._confidence(scored) if parsed else 0.0
            out.append(Prediction(label, conf, ((label, conf),)))
        return out

    def _label(self, text: str) -> tuple[str, bool]:
        """The label in the reply (exact JSON under a grammar; else the first label named in the text);
        an unreadable reply gives the first label with ``parsed`` False (confidence 0)."""
        try:
            v = json.loads(text)
            if v in self.labels:
                return str(v), True
        except json.JSONDecodeError:
            pass
        found = sorted((text.find(lbl), lbl) for lbl in self.labels if lbl in text)
        return (found[0][1], True) if found else (self.labels[0], False)

    def _confidence(self, tokens: Sequence[Any]) -> float:
        """P(label) relative to the other labels at the first token that tells them apart: among the top
        alternatives there, the share of the mass of those that begin some label (1.0 when unscored)."""
        for tok in tokens:
            text = tok.token.strip().strip('"')
            if not text:
                continue  # the JSON quote
            mass: dict[str, float] = {}
            for alt, lp, _ in tok.top:
                a = alt.strip().strip('"')
                if a and any(lbl.startswith(a) or a.startswith(lbl) for lbl in self.labels):
                    mass[a] = max(mass.get(a, -1e9), lp)
            mass.setdefault(text, tok.logprob)
            z = sum(float(np.exp(v)) for v in mass.values())
            return float(np.exp(mass[text])) / z if z > 0 else 1.0
        return 1.0
