"""Guards on a running generation: stop strings and the repeated-n-gram loop detector."""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    """Cuts the text stream at the first stop string, holding back any tail that could start one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if not self._stops:
            return text
        if self.stopped:
            return ""
        buf = self._held + text
        hits = [i for s in self._stops if (i := buf.find(s)) >= 0]
        if hits:
            self.stopped = True
            self._held = ""
            return buf[: min(hits)]
        keep = 0
        for s in self._stops:
            for n in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held


class LoopDetector:
    """Flags a generation whose tail is one n-gram repeated over and over.

    The tail is looping when, for some period p <= ``max_period``, the last ``span`` tokens repeat with
    period p, where ``span`` is at least ``min_repeats`` periods and at least ``min_span`` tokens. Short
    legitimate repetition ("哈哈哈", a table rule) stays under ``min_span``.
    """

    def __init__(self, max_period: int = 64, min_repeats: int = 4, min_span: int = 96) -> None:
        self.max_period = max_period
        self.min_repeats = min_repeats
        self.min_span = min_span
        self._ids: list[int] = []

    def feed(self, token_id: int) -> bool:
        ids = self._ids
        ids.append(token_id)
        n = len(ids)
        if n < self.min_span:
            return False
        if n > 4 * self.max_period * self.min_repeats + self.min_span:
            del ids[: n // 2]
            n = len(ids)
        for p in range(1, self.max_period + 1):
            span = max(self.min_span, p * self.min_repeats)
            if span > n or ids[-1] != ids[-1 - p]:
                continue
            tail = ids[n - span :]
            if all(tail[i] == tail[i + p] for i in range(span - p)):
                return True
        return False
