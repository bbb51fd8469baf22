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
from glmkit.kb.section import Kind, Section

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
    run: list[Section] = []  # consecutive text sections under one heading: packed together

    def flush() -> None:
        if run:
            out.extend(_pack_run(run, size, overlap))
            run.clear()

    for s in sections:
        if s.kind == "text":
            if run and run[-1].heading != s.heading:
                flush()
            run.append(s)
            continue
        flush()
        if s.kind in ("table", "faq") and len(s.text) + len(s.answer) <= 2 * size:
            out.append(Piece(s.text, s.location, s.heading, s.kind, s.answer))
            continue
        if s.kind == "faq":  # a long answer: the question travels with each part
            for part in _pack(sentences(s.answer), size, overlap):
                out.append(Piece(s.text, s.location, s.heading, "faq", part))
            continue
        # a long table: cut between rows, the header row repeated
        rows = s.text.split("\n")
        header, body = rows[0], rows[1:]
        for part in _pack(body, size - len(header), 0):
            out.append(Piece(header + "\n" + part, s.location, s.heading, "table"))
    flush()
    return out


def _pack_run(run: Sequence[Section], size: int, overlap: int) -> list[Piece]:
    """Paragraphs (and list items) of one section packed into chunks of about even size up to ``size``;
    a paragraph longer than that is cut between sentences first. A lead-in ("…请运行：") stays with what
    it introduces, and a short tail joins the chunk before it (up to ``size × 1.25``), so no chunk is a
    fragment unless its whole section is that short."""
    units: list[tuple[str, Section]] = []
    for s in run:
        text = s.text.strip()
        parts = [text] if len(text) <= size else _pack(sentences(text), size, overlap)
        units.extend((p, s) for p in parts)
    total = sum(len(u) + 1 for u, _ in units)
    target = total / max(1, -(-total // size))
    groups: list[list[tuple[str, Section]]] = []
    cur: list[tuple[str, Section]] = []
    cur_len = 0
    for u in units:
        if cur and (cur_len + len(u[0]) > size or cur_len >= target):
            cut = len(cur)
            while cut > 1 and _lead_in(cur[cut - 1][0]):  # never end a chunk on its lead-in
                cut -= 1
            if _lead_in(cur[cut - 1][0]) and cur_len + len(u[0]) <= size * 1.5:
                cut = 0  # nothing but lead-ins so far: let the chunk grow to hold what they introduce
            elif _lead_in(cur[cut - 1][0]) or _chars(cur[:cut]) < MIN_CHUNK:
                cut = len(cur)  # too long to grow, or a stub would be left behind: cut here after all
            if cut:
                groups.append(cur[:cut])
                cur = cur[cut:]
                cur_len = sum(len(x) + 1 for x, _ in cur)
        cur.append(u)
        cur_len += len(u[0]) + 1
    if cur:
        groups.append(cur)
    short_tail = len(groups) > 1 and _chars(groups[-1]) < MIN_CHUNK
    if short_tail and _chars(groups[-2]) + _chars(groups[-1]) <= size * 1.25:
        groups[-2:] = [groups[-2] + groups[-1]]
    return [_piece(g) for g in groups]


MIN_CHUNK = 80  # characters: a shorter chunk says too little to be found or cited (unless it is all there is)


def _lead_in(text: str) -> bool:
    """Text that introduces what follows: "…请运行：", a command line, a list item's title."""
    t = text.rstrip()
    return t.endswith(("：", ":")) or (len(t) < 60 and not t.endswith(SENTENCE_FINAL))


SENTENCE_FINAL = tuple("。！？.!?；;，,、）)」』”…")


def _chars(group: Sequence[tuple[str, Section]]) -> int:
    return sum(len(u) + 1 for u, _ in group) - 1


def _piece(group: Sequence[tuple[str, Section]]) -> Piece:
    first, last = group[0][1], group[-1][1]
    text = "\n".join(u for u, _ in group)
    if first.lines is not None and last.lines is not None and first is not last:
        a, b = first.lines[0], last.lines[1]
        where = f"行 {a}" if a == b else f"行 {a}-{b}"
        location = f"{first.heading} · {where}" if first.heading else where
    elif first.location == last.location:
        location = first.location
    else:
        location = f"{first.location} – {last.location.removeprefix(first.heading + ' · ')}"
    return Piece(text, location, first.heading, "text")


def _pack(units: list[str], size: int, overlap: int) -> list[str]:
    units = [u[i : i + size] for u in units for i in range(0, len(u), size)]  # hard-cut very long units
    total = sum(map(len, units))
    target = total / max(1, -(-total // max(1, size - overlap)))  # even parts rather than a stub at the end
    chunks: list[str] = []
    cur: list[str] = []
    cur_len = 0
    for u in units:
        if cur and (cur_len + len(u) > size or cur_len >= target):
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
