"""The structure of documents whose markup says little: headings, a table of contents, hard-wrapped lines.

Loaders hand over ``Block``s: runs of lines (a paragraph between blank lines, a Word paragraph, a group
of PDF lines), some already known to be headings (a Markdown ``#``, a Word heading style, a PDF line in a
larger font: ``rank``). ``sections`` turns them into located sections that carry their heading path.
When the markup names no heading at all (``infer``), headings are recognised in the text itself:

- numbered: ``1.`` ``8.5.`` ``8.5.1`` ``一、`` ``（二）`` ``第 N 章/节/条``; ALL-CAPS title lines; a line
  underlined with ``===`` or ``---``; a short unnumbered line standing alone to the left of an indented body;
- only as a block of its own (or the first, unwrapped line of one), starting left of the body text,
  without the final punctuation of a sentence, and numbered consistently: ``8.5`` belongs under chapter 8,
  and a plain ``3.`` must follow ``2.`` and must not be followed directly by ``4.`` (that is a list);
- a table of contents (a ``目录``/``Contents`` title, or a block whose lines are mostly numbered titles) is
  dropped: every chunk carries its heading anyway, and the list of all titles would match every query.

Hard-wrapped prose (every line nearly as wide as the widest) is joined back into paragraphs; short lines
(commands, code, addresses) keep their line breaks."""

from __future__ import annotations

import itertools
import re
import statistics
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from glmkit.kb.section import Section

ZH_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
CHAPTER = re.compile(r"^第\s*([0-9]+|[零〇一二三四五六七八九十百两]+)\s*([篇部编卷章节条回])\s*(\S.*)?$")
DOTTED = re.compile(r"^(\d{1,3}(?:\.\d{1,3})+)\.?\s+(\S.*)$")
SINGLE = re.compile(r"^(\d{1,2})(?:\.|．|、)\s*(\S.*)$")
CN_NUM = re.compile(r"^([一二三四五六七八九十]{1,3})[、．.]\s*(\S.*)$")
PAREN_CN = re.compile(r"^[（(]([一二三四五六七八九十]{1,3})[)）]\s*(\S.*)$")
CAPS = re.compile(r"^[A-Z][A-Z0-9 &,'/:()-]{2,60}$")
RULE = re.compile(r"^\s*([-=_*~])\1{2,}\s*$")
BULLET = re.compile(r"^\s*(?:[*•·‣-]|\d{1,2}[.)、]|[（(]\d{1,2}[)）])\s")
LEADERS = re.compile(r"(?:\.{3,}|…{2,}|·{3,})\s*\d+\s*$")
TOC_TITLES = {"目录", "目 录", "contents", "table of contents", "目次"}
SENTENCE_END = tuple("。，,；;：:、")
# The rank of each kind of heading: a heading closes every open heading of the same or a deeper rank.
RANK = {"篇": 0, "部": 0, "编": 0, "卷": 0, "章": 1, "=": 1, "caps": 1, "节": 2, "回": 2, "-": 2,
        "cn": 2, "条": 3, "pcn": 3, "plain": 9}  # fmt: skip


@dataclass
class Block:
    lines: list[str]
    start: int = 0  # line number of the first line (0: not line-addressed)
    rank: int | None = None  # known to be a heading of this rank (markup, style, font size)
    pre: bool = False  # preformatted (a code fence): never a heading, never re-wrapped
    where: str = ""  # a location the lines sit in ("第3页"), when not line-addressed


@dataclass(frozen=True)
class _Heading:
    rank: int
    title: str
    number: tuple[int, ...] = ()


def width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def indent(s: str) -> int:
    return len(s) - len(s.lstrip())  # NBSP and ideographic spaces indent too


def zh_number(s: str) -> int:
    if s.isdigit():
        return int(s)
    total, cur = 0, 0
    for c in s:
        if c == "十":
            total += (cur or 1) * 10
            cur = 0
        elif c == "百":
            total += (cur or 1) * 100
            cur = 0
        else:
            cur = ZH_DIGITS.get(c, 0)
    return total + cur


def text_blocks(text: str) -> list[Block]:
    """Blank-line separated blocks of a plain text, with their first line numbers."""
    blocks: list[Block] = []
    cur: list[str] = []
    start = 1
    for no, line in enumerate(text.splitlines(), 1):
        if line.strip():
            if not cur:
                start = no
            cur.append(line.rstrip())
        elif cur:
            blocks.append(Block(cur, start))
            cur = []
    if cur:
        blocks.append(Block(cur, start))
    return blocks


class _Layout:
    """What the body text of a document looks like: its indentation and the width it is wrapped at."""

    def __init__(self, blocks: Sequence[Block | Section]) -> None:
        lines = [
            ln for b in blocks if isinstance(b, Block) and not b.pre and b.rank is None for ln in b.lines
        ]
        prose = [ln for ln in lines if len(ln.strip()) >= 20]
        self.body_indent = statistics.mode(indent(ln) for ln in prose) if prose else 0
        widths = sorted(width(ln) for ln in lines)
        self.wrap = widths[int(0.95 * (len(widths) - 1))] if widths else 0
        self.wrapped = 40 <= self.wrap <= 160 and len(lines) >= 8

    def full(self, line: str) -> bool:
        """The line was broken by the wrapping, not by the author."""
        return self.wrapped and width(line) >= self.wrap - 14


def _join(lines: Sequence[str], layout: _Layout) -> str:
    """The block's lines with the wrapping undone: a full line continues on the next one."""
    out = lines[0].strip()
    for prev, line in itertools.pairwise(lines):
        nxt = line.strip()
        if layout.full(prev) and not BULLET.match(line):
            out += (" " if out and _spaced(out[-1], nxt[0]) else "") + nxt
        else:
            out += "\n" + nxt
    return out


def _spaced(a: str, b: str) -> bool:
    """Whether a line break between ``a`` and ``b`` stood for a space: between two Latin words, or a Latin
    word and a Chinese one (the FAQ's style); never inside Chinese or next to full-width punctuation."""
    latin_a, latin_b = a.isascii() and a.isalnum(), b.isascii() and b.isalnum()
    if latin_a and latin_b:
        return True
    return (latin_a and unicodedata.category(b) == "Lo") or (latin_b and unicodedata.category(a) == "Lo")


def _candidate(title: str) -> tuple[str, tuple[int, ...]] | None:
    """The kind of heading ``title`` would be (and its number), judged by its text alone."""
    if len(title) > 120 or title.endswith(SENTENCE_END) or "\n" in title:
        return None
    if m := CHAPTER.match(title):
        return m.group(2), (zh_number(m.group(1)),)
    if m := DOTTED.match(title):
        return "num", tuple(int(x) for x in m.group(1).split("."))
    short = len(title) <= 40 and "。" not in title
    if short and (m := SINGLE.match(title)):
        return "num", (int(m.group(1)),)
    if short and (m := CN_NUM.match(title)):
        return "cn", (zh_number(m.group(1)),)
    if short and (m := PAREN_CN.match(title)):
        return "pcn", (zh_number(m.group(1)),)
    if CAPS.match(title) and sum(c.isalpha() for c in title) >= 4:
        return "caps", ()
    return None


def _is_toc(b: Block) -> bool:
    lines = [ln.strip() for ln in b.lines]
    if len(lines) < 3:
        return False
    titled = sum(1 for ln in lines if LEADERS.search(ln) or ((c := _candidate(ln)) is not None and c[1]))
    return titled >= 0.5 * len(lines)


def _deep_toc(b: Block) -> bool:
    """Contents-like without a title: multi-level numbers, chapters or page-number leaders."""
    for ln in b.lines:
        c = _candidate(ln.strip())
        if LEADERS.search(ln) or (c is not None and (len(c[1]) >= 2 or c[0] in "篇部编卷章节")):
            return True
    return False


def sections(blocks: Sequence[Block | Section], *, infer: bool) -> list[Section]:
    """Located sections carrying their heading path; headings recognised in the text when ``infer``.
    A ready ``Section`` among the blocks (a table) is placed under the heading above it."""
    layout = _Layout(blocks)
    out: list[Section] = []
    stack: list[_Heading] = []
    in_toc = False
    for i, b in enumerate(blocks):
        if isinstance(b, Section):
            heading = " > ".join(h.title for h in stack)
            out.append(
                replace(b, heading=heading, location=f"{heading} · {b.location}" if heading else b.location)
            )
            continue
        if b.rank is not None:
            _push(stack, _Heading(b.rank, " ".join(" ".join(b.lines).split())))
            in_toc = False
            continue
        if infer and (under := _underline(b.lines)) is not None:
            _push(stack, _Heading(RANK[under], " ".join(b.lines[0].split())))
            continue
        lines = [ln for ln in b.lines if not RULE.match(ln)] if not b.pre else b.lines
        if not lines:
            continue
        if infer and not b.pre:
            first = lines[0].strip()
            if first.lower() in TOC_TITLES and len(lines) == 1:
                in_toc = True
                continue
            front = not any(h.number for h in stack)  # no numbered heading yet: a contents list may come
            if front and _is_toc(b) and (in_toc or _deep_toc(b)):
                in_toc = True
                continue
            in_toc = False
            head, rest = _heading(lines, blocks, i, layout, stack)
            if head is not None:
                _push(stack, head)
                if not rest:
                    continue
                b = Block(rest, b.start + len(lines) - len(rest) if b.start else 0, None, False, b.where)
                lines = rest
        text = "\n".join(ln.rstrip() for ln in lines) if b.pre else _join(lines, layout)
        heading = " > ".join(h.title for h in stack)
        span = (b.start, b.start + len(b.lines) - 1) if b.start else None
        out.append(Section(text, _where(b, span, heading), heading, lines=span))
    return out


def _underline(lines: Sequence[str]) -> str | None:
    """``=`` or ``-`` when the block is a title line underlined with it."""
    m = RULE.match(lines[1]) if len(lines) == 2 else None
    if m is None or m.group(1) not in "=-" or RULE.match(lines[0]) or len(lines[0].strip()) > 80:
        return None
    return m.group(1)


def _where(b: Block, span: tuple[int, int] | None, heading: str) -> str:
    if span is not None:
        lines = f"行 {span[0]}" if span[0] == span[1] else f"行 {span[0]}-{span[1]}"
    else:
        lines = b.where
    return f"{heading} · {lines}" if heading and lines else heading or lines


def _push(stack: list[_Heading], h: _Heading) -> None:
    while stack and stack[-1].rank >= h.rank:
        stack.pop()
    stack.append(h)


def _heading(
    lines: list[str], blocks: Sequence[Block | Section], i: int, layout: _Layout, stack: Sequence[_Heading]
) -> tuple[_Heading | None, list[str]]:
    """The heading this block starts with, if any, and the lines after it."""
    first = lines[0]
    if layout.body_indent >= 2 and indent(first) >= layout.body_indent:
        return None, lines
    if layout.body_indent < 2 and indent(first) > 3:
        return None, lines
    n = 1  # a wrapped title continues while its lines are full
    while n < len(lines) and n < 3 and layout.full(lines[n - 1]) and indent(lines[n]) <= indent(first):
        n += 1
    title = " ".join(_join(lines[:n], layout).split())
    kind = _candidate(title)
    if kind is None:
        if (
            n == len(lines) == 1
            and layout.body_indent >= 2
            and len(title) <= 30
            and not title.endswith(SENTENCE_END)
            and any(c.isalpha() for c in title)
            and sum(c.isdigit() for c in title) <= 2
        ):
            return _Heading(RANK["plain"], title), []
        return None, lines
    name, number = kind
    if name == "num":
        depth = len(number)
        parent = next((h for h in reversed(stack) if h.number and len(h.number) < depth), None)
        if depth >= 2 and parent is not None and parent.number != number[: len(parent.number)]:
            return None, lines
        if depth == 1:
            prev = next((h for h in reversed(stack) if len(h.number) == 1 and h.rank == 4), None)
            expected = prev.number[0] + 1 if prev is not None else 1
            if number[0] != expected or n != len(lines) or _next_is_sibling(blocks, i, number[0]):
                return None, lines
        return _Heading(3 + depth, title, number), lines[n:]
    if name in ("cn", "pcn") and (n != len(lines) or _next_is_sibling(blocks, i, number[0])):
        return None, lines
    return _Heading(RANK[name], title, number if name in "篇部编卷章节条回" else ()), lines[n:]


def _next_is_sibling(blocks: Sequence[Block | Section], i: int, n: int) -> bool:
    """The next block is the next item of the same numbering right away: a list, not headings."""
    after = blocks[i + 1] if i + 1 < len(blocks) else None
    if not isinstance(after, Block):
        return False
    nxt = _candidate(after.lines[0].strip())
    return nxt is not None and len(nxt[1]) == 1 and nxt[1][0] == n + 1


def plain_sections(text: str) -> list[Section]:
    return sections(text_blocks(text), infer=True)


def has_headings(blocks: Iterable[Block | Section]) -> bool:
    return any(isinstance(b, Block) and b.rank is not None for b in blocks)
