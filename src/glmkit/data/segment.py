"""Chinese word segmentation with jieba, user dictionaries and stop-word removal.

A ``Segmenter`` owns its own ``jieba.Tokenizer``: user dictionaries loaded into it never leak into the
process-wide jieba that the knowledge base and the metrics use. Stop-word lists are the built-in ``zh``
and ``en`` lists (package data, from the stopwords-iso collection, MIT; see each file's header) or any
UTF-8 file with one word per line (``#`` starts a comment line). Matching is case-insensitive, and
whitespace tokens are always dropped. The output of ``segment`` is the kept words joined by one space.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

from glmkit.errors import InvalidRequestError

BUILTIN_STOPWORDS = ("zh", "en")


def parse_stopwords(text: str) -> set[str]:
    """Words from a stop-word file's text: one per line, blank lines and ``#`` comment lines skipped."""
    return {w.strip().casefold() for w in text.splitlines() if w.strip() and not w.lstrip().startswith("#")}


def builtin_stopwords(name: str) -> set[str]:
    """A shipped list by name (``zh`` or ``en``)."""
    if name not in BUILTIN_STOPWORDS:
        raise InvalidRequestError(
            f"no built-in stop-word list {name!r} (built-in: {', '.join(BUILTIN_STOPWORDS)})"
        )
    return parse_stopwords(
        resources.files("glmkit.data").joinpath("stopwords", f"{name}.txt").read_text("utf-8")
    )


def load_stopwords(specs: Iterable[str]) -> frozenset[str]:
    """The union of several lists, each a built-in name or a file path."""
    words: set[str] = set()
    for spec in specs:
        if spec in BUILTIN_STOPWORDS:
            words |= builtin_stopwords(spec)
            continue
        path = Path(spec)
        if not path.is_file():
            raise InvalidRequestError(
                f"stop-word list {spec!r} is neither a built-in list "
                f"({', '.join(BUILTIN_STOPWORDS)}) nor a file",
                param="stopwords",
            )
        try:
            words |= parse_stopwords(path.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError as e:
            raise InvalidRequestError(f"{spec}: the stop-word file is not UTF-8", param="stopwords") from e
    return frozenset(words)


class Segmenter:
    """``words(text)``: jieba words minus stop words and whitespace; ``segment(text)``: them, space-joined."""

    def __init__(
        self,
        userdicts: Sequence[str | Path] = (),
        stopwords: frozenset[str] = frozenset(),
        *,
        hmm: bool = True,
    ) -> None:
        import jieba

        jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict" chatter on stderr
        self._tok = jieba.Tokenizer()
        self._tok.initialize()
        for d in userdicts:
            self._load_userdict(Path(d))
        self.stopwords = stopwords
        self.hmm = hmm

    def _load_userdict(self, path: Path) -> None:
        if not path.is_file():
            raise InvalidRequestError(f"user dictionary {path}: no such file", param="userdict")
        try:
            self._tok.load_userdict(str(path))
        except (ValueError, UnicodeDecodeError) as e:  # jieba names the file and line of a bad entry
            raise InvalidRequestError(f"user dictionary {path}: {e}", param="userdict") from e

    def words(self, text: str) -> list[str]:
        stop = self.stopwords
        return [w for w in self._tok.lcut(text, HMM=self.hmm) if w.strip() and w.casefold() not in stop]

    def segment(self, text: str) -> str:
        """Words joined by single spaces; line breaks in ``text`` are kept between the lines' words."""
        return "\n".join(" ".join(self.words(line)) for line in text.split("\n"))
