"""Cut sections into retrieval chunks, Chinese first.

Sentences end at 。！？；… (and their ASCII forms, and line breaks); chunks are packed from whole
sentences up to ``size`` characters with about ``overlap`` characters of the previous chunk repeated;
a sentence longer than ``size`` is cut hard. Tables and FAQ entries stay whole while they fit in
``2 × size``. The heading path travels with every chunk (indexed with it, shown in citations)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from glmkit.errors import InvalidRequestError
from glmkit.kb.loaders import Kind, Section

SENTENCE_END = re.compile(
    r"(?<=[。！？；!?;…])(?![。！？；!?;…”’」』）)\]])"  # Chinese ends (a run of them counts once)
    r"|(?<=[。！？!?][”’」』）)])"  # an end inside closing quotes
    r"|(?<=[.!?])\s+(?=[A-Z\u4e00-\u9fff])"  # English sentence ends
    r"|\n+"
)


@dataclass(frozen=True)
class Piece:
    text: str
    location: str
    heading: str = ""
    kind: Kind = "text"
    answer: str = ""

    @property
    def indexed(self) -> str:
        """The text that is embedded and indexed: heading, text and (FAQ) answer."""
        parts = [self.heading, self.text, self.answer]
        return "\n".join(p for p in parts if p)


def sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in SENTENCE_END.split(text)) if s]


def split(sections: Sequence[Section], size: int = 400, overlap: int = 60) -> list[Piece]:
    if size < 50:
        raise InvalidRequestError(f"chunk size must be >= 50 characters, got {size}", param="chunk_size")
    if not 0 <= overlap < size // 2:
        raise InvalidRequestError(f"overlap must be within [0, size/2), got {overlap}", param="chunk_overlap")
    out: list[Piece] = []
    for s in sections:
        if s.kind in ("table", "faq") and len(s.text) + len(s.answer) <= 2 * size:
            out.append(Piece(s.text, s.location, s.heading, s.kind, s.answer))
            continue
        if s.kind == "faq":  # a long answer: the question travels with each part
            for part in _pack(sentences(s.answer), size, overlap):
                out.append(Piece(s.text, s.location, s.heading, "faq", part))
            continue
        if s.kind == "table":  # a long table: cut between rows, the header row repeated
            rows = s.text.split("\n")
            header, body = rows[0], rows[1:]
            for part in _pack(body, size - len(header), 0):
                out.append(Piece(header + "\n" + part, s.location, s.heading, "table"))
            continue
        for part in _pack(sentences(s.text), size, overlap):
            out.append(Piece(part, s.location, s.heading, "text"))
    return out


def _pack(units: list[str], size: int, overlap: int) -> list[str]:
    units = [u[i : i + size] for u in units for i in range(0, len(u), size)]  # hard-cut very long units
    chunks: list[str] = []
    cur: list[str] = []
    cur_len = 0
    for u in units:
        if cur and cur_len + len(u) > size:
            chunks.append(_join(cur))
            keep: list[str] = []
            kept = 0
            for prev in reversed(cur):
                if kept + len(prev) > overlap:
                    break
                keep.insert(0, prev)
                kept += len(prev)
            cur, cur_len = keep, kept
        cur.append(u)
        cur_len += len(u)
    if cur:
        chunks.append(_join(cur))
    return chunks


def _join(units: list[str]) -> str:
    out = ""
    for u in units:
        if out and (out[-1].isascii() and out[-1].isalnum()) and (u[0].isascii() and u[0].isalnum()):
            out += " "
        out += u
    return out
