"""The sensitive-word filter: word lists by category, one Aho–Corasick pass, and an action per category.

Matching folds case and full-width ASCII (``ＦＵＣＫ`` is ``fuck``) without moving offsets. A word that
starts (ends) with an ASCII letter or digit only matches where the text has no ASCII letter or digit just
before (after) it, so ``ass`` is not found in ``class``; Chinese words match anywhere. A hit inside an
occurrence of an allowed phrase (``allow``) does not count.

Actions, weakest first: ``off`` (not looked for), ``flag`` (allowed, recorded), ``mask`` (each character
becomes ``＊``), ``block`` (refused). A text gets the strongest action among the categories it hits.

Word-list files (``wordlists/*.txt`` here, or your own): one word a line, ``#`` starts a comment line, and
a ``# category: NAME`` line names the category (default: the file name without ``.txt``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from glmkit.errors import InvalidRequestError
from glmkit.safety.ahocorasick import Automaton

Action = Literal["off", "flag", "mask", "block"]
ACTIONS: tuple[Action, ...] = ("off", "flag", "mask", "block")
STRENGTH: dict[str, int] = {a: i for i, a in enumerate(ACTIONS)}
MASK_CHAR = "＊"
WORDLISTS = Path(__file__).parent / "wordlists"
CATEGORY_LABELS: dict[str, str] = {
    "profanity": "辱骂/脏话",
    "pornography": "色情",
    "gambling": "赌博",
    "drugs": "毒品",
    "violence": "暴力",
    "fraud": "诈骗",
}
_FULL_TO_HALF = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}


def fold(text: str) -> str:
    """Lower case and half-width ASCII, one character for one (offsets into ``text`` stay valid)."""
    out = text.translate(_FULL_TO_HALF)
    low = out.lower()
    if len(low) == len(out) and "Σ" not in out:  # Σ lowers by context (ς at a word's end): per character
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in out)  # e.g. 'İ' lowers to 2 characters


def _is_word_char(c: str) -> bool:
    return c.isascii() and c.isalnum()


@dataclass(frozen=True)
class WordList:
    category: str
    words: tuple[str, ...]
    source: str = ""  # the '# source:' header line, if any
    path: str = ""


def read_wordlist(path: Path) -> WordList:
    """One word list file (see the module docstring for the format)."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as e:
        raise InvalidRequestError(f"{path}: cannot read the word list ({e.strerror})") from None
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{path}: a word list must be UTF-8 text") from None
    category, source, words = path.stem.removeprefix("zh_").removeprefix("en_"), "", []
    for raw in lines:
        line = raw.strip()
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            if key.strip() == "category" and value.strip():
                category = value.strip()
            elif key.strip() == "source":
                source = value.strip()
        elif line:
            words.append(line)
    return WordList(category, tuple(words), source, str(path))


@functools.cache
def default_wordlists() -> tuple[WordList, ...]:
    """The word lists shipped in ``glmkit/safety/wordlists`` (their sources and licences are in each
    file's header)."""
    return tuple(read_wordlist(p) for p in sorted(WORDLISTS.glob("*.txt")))


@dataclass(frozen=True)
class Hit:
    category: str
    start: int
    end: int
    word: str  # the word list entry (folded), never shown to callers


@dataclass(frozen=True)
class Verdict:
    """What the filter made of one text: its hits, the action taken and the text to use (masked when
    the action is ``mask``; unchanged otherwise)."""

    text: str
    hits: tuple[Hit, ...] = ()
    action: Action = "off"
    actions: Mapping[str, Action] = field(default_factory=dict)  # category -> its action

    @property
    def categories(self) -> list[str]:
        return sorted({h.category for h in self.hits})

    @property
    def blocked(self) -> list[str]:
        return [c for c in self.categories if self.actions.get(c) == "block"]


def mask_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            if not chars[i].isspace():
                chars[i] = MASK_CHAR
    return "".join(chars)


class ContentFilter:
    """Words by category, an action per category (``default`` for the rest) and allowed phrases."""

    def __init__(
        self,
        words: Mapping[str, Iterable[str]],
        default: Action = "flag",
        actions: Mapping[str, Action] | None = None,
        allow: Iterable[str] = (),
    ) -> None:
        for name, a in {"default": default, **(actions or {})}.items():
            if a not in ACTIONS:
                raise InvalidRequestError(
                    f"content filter action for {name} must be one of {ACTIONS}, not {a!r}"
                )
        self.default = default
        self.actions: dict[str, Action] = dict(actions or {})
        entries: dict[str, str] = {}  # folded word -> category (the first list that names it)
        for category, ws in words.items():
            if self.action_for(category) == "off":
                continue
            for w in ws:
                key = fold(w.strip())
                if key and key not in entries:
                    entries[key] = category
        self._words = list(entries)
        self._categories = [entries[w] for w in self._words]
        self._matcher = Automaton(self._words)
        self._allow = Automaton(a for a in {fold(x.strip()) for x in allow} if a)
        self.categories = sorted(set(self._categories))

    def action_for(self, category: str) -> Action:
        return self.actions.get(category, self.default)

    @property
    def changes_text(self) -> bool:
        """Whether a hit can change a text (a listed category masks or blocks), not just flag it."""
        return any(STRENGTH[self.action_for(c)] >= STRENGTH["mask"] for c in self.categories)

    @property
    def max_length(self) -> int:
        return self._matcher.max_length

    def __len__(self) -> int:
        return len(self._words)

    def find(self, text: str, folded: str | None = None) -> list[Hit]:
        """Every hit in ``text``, in text order (overlapping hits included)."""
        probe = fold(text) if folded is None else folded
        allowed = [(s, e) for s, e, _ in self._allow.find_all(probe)] if len(self._allow) else []
        hits = []
        for start, end, i in self._matcher.find_all(probe):
            word = self._words[i]
            if _is_word_char(word[0]) and start > 0 and _is_word_char(probe[start - 1]):
                continue
            if _is_word_char(word[-1]) and end < len(probe) and _is_word_char(probe[end]):
                continue
            if any(s <= start and end <= e for s, e in allowed):
                continue
            hits.append(Hit(self._categories[i], start, end, word))
        hits.sort(key=lambda h: (h.start, h.end))
        return hits

    def check(self, text: str) -> Verdict:
        """Hits, the strongest action among their categories, and the text (masked for ``mask``)."""
        hits = self.find(text)
        if not hits:
            return Verdict(text)
        actions = {h.category: self.action_for(h.category) for h in hits}
        action = max(actions.values(), key=STRENGTH.__getitem__)
        if action == "mask":
            masked = [(h.start, h.end) for h in hits if actions[h.category] == "mask"]
            return Verdict(mask_spans(text, masked), tuple(hits), action, actions)
        return Verdict(text, tuple(hits), action, actions)


class StreamFilter:
    """The filter over a text that arrives in pieces (a streamed reply).

    ``feed(piece)`` returns the text that is safe to send now. Only what could still become part of a hit
    is held back: the longest tail of the text that begins a listed word or an allowed phrase (the depth
    of both automata's states, kept from piece to piece), so ordinary text streams as it comes and a word
    split across pieces is still found. A hit is decided once it starts before that tail: its right
    boundary is then known (the next character has arrived) and so is every allowed phrase that could
    cover it. Once a ``block`` category is hit, ``blocked`` is set and nothing more is released.
    ``close()`` releases the rest. The pieces joined give exactly what ``ContentFilter.check`` gives for
    the whole text (or, when blocked, a prefix of it that stops before the blocked word).

    A filter that can only flag (no category masks or blocks) never changes the text, so it holds nothing
    back: every piece goes out as it comes, and hits are still decided (and recorded) as above."""

    def __init__(self, content_filter: ContentFilter) -> None:
        self.filter = content_filter
        self.text = ""  # everything fed so far
        self.folded = ""  # ``text`` folded, one character for one
        self.sent = 0  # characters of ``text`` released
        self.hits: dict[tuple[int, int], Hit] = {}
        self.blocked: list[str] = []
        self._state = 0  # the word automaton's state after ``folded``
        self._allow_state = 0
        self._allowed: list[tuple[int, int]] = []  # allowed-phrase occurrences that may still cover a hit
        self._pending: list[Hit] = []  # occurrences not decided yet
        self._masks: list[tuple[int, int]] = []  # decided ``mask`` hits that reach past ``sent``
        self._decided = 0  # characters whose occurrences are decided (``sent`` too, unless flag-only)
        self._holds = content_filter.changes_text

    def feed(self, piece: str) -> str:
        self.text += piece
        if self.blocked:
            return ""
        self._scan(piece)
        return self._release(final=False)

    def close(self) -> str:
        return self._release(final=True)

    @property
    def held(self) -> int:
        """How many characters are held back now."""
        return len(self.text) - self.sent

    def _scan(self, piece: str) -> None:
        f = self.filter
        matcher, allow, words, categories = f._matcher, f._allow, f._words, f._categories
        folded = fold(piece)
        base = len(self.folded)
        self.folded += folded
        probe, state, astate, use_allow = self.folded, self._state, self._allow_state, len(allow) > 0
        for j, ch in enumerate(folded):
            end = base + j + 1
            state = matcher.step(state, ch)
            for i in matcher.matches(state):
                word = words[i]
                start = end - len(word)
                if _is_word_char(word[0]) and start > 0 and _is_word_char(probe[start - 1]):
                    continue
                self._pending.append(Hit(categories[i], start, end, word))
            if use_allow:
                astate = allow.step(astate, ch)
                self._allowed.extend((end - len(allow.patterns[i]), end) for i in allow.matches(astate))
        self._state, self._allow_state = state, astate

    def _counts(self, h: Hit, n: int, probe: str) -> bool:
        """A decided occurrence is a hit: a word character does not follow it, no allowed phrase covers it."""
        if _is_word_char(h.word[-1]) and h.end < n and _is_word_char(probe[h.end]):
            return False
        return not any(s <= h.start and h.end <= e for s, e in self._allowed)

    def _release(self, final: bool) -> str:
        if self.blocked:
            return ""
        f, n, probe = self.filter, len(self.text), self.folded
        if final:
            cut = n
        else:
            tail = f._matcher.depth(self._state)
            if len(f._allow):
                tail = max(tail, f._allow.depth(self._allow_state))
            cut = max(self._decided, n - tail)
        # An occurrence that starts before ``cut`` ended before the held tail, so the character after it
        # is known, and an allowed phrase covering it would have to start no later than it: none is in
        # progress there, so every such phrase has been seen.
        ready = [h for h in self._pending if h.start < cut and self._counts(h, n, probe)]
        self._pending = [h for h in self._pending if h.start >= cut]
        for h in ready:
            self.hits.setdefault((h.start, h.end), h)
        self._decided = cut
        self._allowed = [(s, e) for s, e in self._allowed if e > cut]
        if not self._holds:
            out, self.sent = self.text[self.sent :], n
            return out
        blocked = sorted({h.category for h in ready if f.action_for(h.category) == "block"})
        if blocked:
            self.blocked = blocked
            return ""
        self._masks.extend((h.start, h.end) for h in ready if f.action_for(h.category) == "mask")
        spans = [(max(s, self.sent) - self.sent, min(e, cut) - self.sent) for s, e in self._masks if s < cut]
        out = mask_spans(self.text[self.sent : cut], spans)
        self._masks = [(s, e) for s, e in self._masks if e > cut]
        self.sent = cut
        return out

    def verdict(self) -> Verdict:
        hits = tuple(sorted(self.hits.values(), key=lambda h: (h.start, h.end)))
        actions = {h.category: self.filter.action_for(h.category) for h in hits}
        action = max(actions.values(), key=STRENGTH.__getitem__) if actions else "off"
        return Verdict(self.text, hits, action, actions)


def iter_words(lists: Iterable[WordList]) -> Iterator[tuple[str, str]]:
    for wl in lists:
        for w in wl.words:
            yield wl.category, w
