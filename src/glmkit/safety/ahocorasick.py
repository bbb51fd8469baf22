"""Aho–Corasick: every occurrence of many patterns in one pass over the text.

``Automaton(patterns)`` builds a trie of the patterns with failure links (breadth first); ``find_all``
walks the text once and yields ``(start, end, index)`` for every occurrence of every pattern, overlapping
ones included, in order of their end. Matching is exact (fold case or width before building and
scanning if you need to). Cost: building is linear in the total pattern length; a scan is linear in the
text plus the number of matches.

For text that arrives in pieces, ``step(state, ch)`` advances one character from a state (0 is the start),
``matches(state)`` names the patterns that end there and ``depth(state)`` is the length of the longest
suffix of what was read that is still a prefix of some pattern: only those last characters can take part
in an occurrence that has not ended yet.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator


class Automaton:
    """A pattern-matching automaton over ``patterns`` (empty patterns are ignored)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[str] = list(patterns)
        self._goto: list[dict[str, int]] = [{}]
        self._fail: list[int] = [0]
        self._out: list[tuple[int, ...]] = [()]
        self._depth: list[int] = [0]
        own: list[list[int]] = [[]]
        for index, pattern in enumerate(self.patterns):
            if not pattern:
                continue
            state = 0
            for ch in pattern:
                nxt = self._goto[state].get(ch)
                if nxt is None:
                    nxt = len(self._goto)
                    self._goto[state][ch] = nxt
                    self._goto.append({})
                    self._fail.append(0)
                    self._out.append(())
                    self._depth.append(self._depth[state] + 1)
                    own.append([])
                state = nxt
            own[state].append(index)
        self._link(own)

    def _link(self, own: list[list[int]]) -> None:
        """Failure links and output sets, breadth first (a state's failure target is always shallower)."""
        queue: deque[int] = deque()
        for child in self._goto[0].values():
            self._out[child] = tuple(own[child])
            queue.append(child)
        while queue:
            state = queue.popleft()
            for ch, child in self._goto[state].items():
                f = self._fail[state]
                while f and ch not in self._goto[f]:
                    f = self._fail[f]
                self._fail[child] = self._goto[f].get(ch, 0)
                self._out[child] = tuple(own[child]) + self._out[self._fail[child]]
                queue.append(child)

    def __len__(self) -> int:
        return len(self.patterns)

    @property
    def max_length(self) -> int:
        """The length of the longest pattern (0 when there is none)."""
        return max(map(len, self.patterns), default=0)

    def step(self, state: int, ch: str) -> int:
        """The state after reading ``ch`` in ``state``."""
        goto, fail = self._goto, self._fail
        while state and ch not in goto[state]:
            state = fail[state]
        return goto[state].get(ch, 0)

    def depth(self, state: int) -> int:
        """How many of the last characters read could still begin or continue an occurrence."""
        return self._depth[state]

    def matches(self, state: int) -> tuple[int, ...]:
        """The indexes of the patterns that end at ``state``."""
        return self._out[state]

    def find_all(self, text: str, start: int = 0) -> Iterator[tuple[int, int, int]]:
        """``(start, end, pattern index)`` for every occurrence in ``text[start:]``."""
        goto, fail, out, patterns = self._goto, self._fail, self._out, self.patterns
        state = 0
        for i in range(start, len(text)):
            ch = text[i]
            while state and ch not in goto[state]:
                state = fail[state]
            state = goto[state].get(ch, 0)
            if out[state]:
                end = i + 1
                for index in out[state]:
                    yield end - len(patterns[index]), end, index
