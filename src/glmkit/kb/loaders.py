"""Read documents into sections (text with a location a citation can point to).

Every format goes through ``load(path)``: txt/md (encoding detected: UTF-8, GBK/GB18030, UTF-16), html,
pdf (text and tables, page by page), docx, pptx, csv/xlsx (a question/answer table becomes FAQ entries),
json/jsonl. Problems raise ``LoadError`` naming the file and what is wrong with it; a loader never returns
half a document."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from glmkit.errors import InvalidRequestError
from glmkit.kb.section import Kind, Section

__all__ = ["LOADERS", "MAX_FILE_BYTES", "Kind", "LoadError", "Section", "load", "loader", "supported"]

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_LINE_CHARS = 200_000  # a longer line is data (minified, generated), not something to cut into chunks

QUESTION_KEYS = ("question", "q", "问题", "问", "标准问", "标准问题", "query", "title", "标题")
ANSWER_KEYS = ("answer", "a", "答案", "答", "回答", "标准答案", "reply", "response", "content")


class LoadError(InvalidRequestError):
    code = "unreadable_document"


LOADERS: dict[str, Callable[[Path, bytes], list[Section]]] = {}


def loader(
    *exts: str,
) -> Callable[[Callable[[Path, bytes], list[Section]]], Callable[[Path, bytes], list[Section]]]:
    def deco(fn: Callable[[Path, bytes], list[Section]]) -> Callable[[Path, bytes], list[Section]]:
        for e in exts:
            LOADERS[e] = fn
        return fn

    return deco


def supported() -> list[str]:
    return sorted(LOADERS)


def load(path: Path, max_bytes: int = MAX_FILE_BYTES) -> list[Section]:
    ext = path.suffix.lower().lstrip(".")
    gzipped = ext == "gz"  # "faq.txt.gz": read as the .txt inside
    if gzipped:
        ext = Path(path.stem).suffix.lower().lstrip(".")
    fn = LOADERS.get(ext)
    if fn is None:
        raise LoadError(f"{path.name}: unsupported file type '.{ext}' (supported: {', '.join(supported())})")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise LoadError(f"{path}: cannot read ({e.strerror})") from None
    if size > max_bytes:
        raise LoadError(f"{path.name}: {size} bytes is over the {max_bytes}-byte limit for one file")
    if size == 0:
        raise LoadError(f"{path.name}: the file is empty")
    data = path.read_bytes()
    if gzipped:
        data = _gunzip(path, data, max_bytes)
    try:
        sections = fn(path, data)
    except LoadError:
        raise
    except Exception as e:  # noqa: BLE001 - parsers raise anything on corrupt input
        raise LoadError(f"{path.name}: cannot parse this .{ext} file ({type(e).__name__}: {e})") from None
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise LoadError(f"{path.name}: no text found in the file")
    return sections


def _gunzip(path: Path, data: bytes, max_bytes: int) -> bytes:
    import gzip
    import zlib

    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            out = f.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise LoadError(f"{path.name}: not a readable gzip file ({e})") from None
    if len(out) > max_bytes:
        raise LoadError(f"{path.name}: over the {max_bytes}-byte limit for one file once uncompressed")
    if not out:
        raise LoadError(f"{path.name}: the file is empty")
    return out


# ---- text ------------------------------------------------------------------------------------------------
def decode_text(path: Path, data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 (BOM), else GB18030 or what charset-normalizer finds."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "strict")
    if b"\x00" in data[:8192]:
        raise LoadError(f"{path.name}: looks like a binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.chaos > 0.3:
        raise LoadError(f"{path.name}: not text in any encoding glmkit recognises (binary data?)")
    return str(best)


def _control_ratio(text: str) -> float:
    bad = sum(1 for c in text[:20000] if ord(c) < 32 and c not in "\n\r\t\f")
    return bad / max(1, min(len(text), 20000))


def _paragraphs(text: str, heading: str = "", first_line: int = 1) -> Iterator[Section]:
    lines = text.splitlines()
    buf: list[str] = []
    start = first_line
    for i, line in enumerate(lines, first_line):
        if line.strip():
            if not buf:
                start = i
            buf.append(line)
        elif buf:
            yield Section("\n".join(buf), _lines(start, i - 1, heading), heading)
            buf = []
    if buf:
        yield Section("\n".join(buf), _lines(start, first_line + len(lines) - 1, heading), heading)


def _lines(a: int, b: int, heading: str) -> str:
    where = f"行 {a}" if a == b else f"行 {a}-{b}"
    return f"{heading} · {where}" if heading else where


@loader("txt", "text", "log")
def load_txt(path: Path, data: bytes) -> list[Section]:
    from glmkit.kb.structure import plain_sections

    return plain_sections(_text(path, data))


def _text(path: Path, data: bytes) -> str:
    """Decoded text that looks like text: not binary, and in lines a person could have written."""
    text = decode_text(path, data)
    if _control_ratio(text) > 0.01:
        raise LoadError(f"{path.name}: looks like a binary file (control characters), not text")
    longest = max(map(len, text.splitlines()), default=0)
    if longest > MAX_LINE_CHARS:
        raise LoadError(
            f"{path.name}: a line of {longest:,} characters (limit {MAX_LINE_CHARS:,}) is not prose — "
            "minified or generated data? Break it into lines or paragraphs first"
        )
    return text


FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")


@loader("md", "markdown")
def load_md(path: Path, data: bytes) -> list[Section]:
    """ATX (``#``) and setext (underlined) headings; fenced code stays one block; a Markdown file
    without any heading markup gets its headings recognised in the text, as plain text does."""
    from glmkit.kb.structure import Block, has_headings, sections

    lines = _text(path, data).splitlines()
    blocks: list[Block] = []
    cur: list[str] = []
    start = 1
    fence = ""

    def flush() -> None:
        if cur:
            blocks.append(Block(cur.copy(), start))
            cur.clear()

    for i, line in enumerate(lines, 1):
        if fence:
            cur.append(line)
            if line.strip().startswith(fence):
                blocks.append(Block(cur.copy(), start, pre=True))
                cur.clear()
                fence = ""
            continue
        if m := FENCE.match(line):
            flush()
            fence, start = m.group(1), i
            cur.append(line)
            continue
        m = HEADING.match(line)
        s = SETEXT.match(line)
        if s and len(cur) == 1 and not (s.group(1)[0] == "-" and len(s.group(1)) < 3):
            blocks.append(Block(cur.copy(), start, rank=1 if s.group(1)[0] == "=" else 2))
            cur.clear()
            continue
        if m:
            flush()
            blocks.append(Block([m.group(2)], i, rank=len(m.group(1))))
        elif line.strip():
            if not cur:
                start = i
            cur.append(line)
        else:
            flush()
    if cur:
        blocks.append(Block(cur.copy(), start, pre=bool(fence)))
    return sections(blocks, infer=not has_headings(blocks))


# ---- html ------------------------------------------------------------------------------------------------
NAV_CLASSES = {"toc", "navheader", "navfooter", "navigation", "breadcrumb", "breadcrumbs", "sidebar"}
NAV_IDS = {"toc", "TOC", "nav", "navigation"}
FOOTNOTE_CLASSES = {"footnotes", "endnotes"}


@loader("html", "htm", "xhtml")
def load_html(path: Path, data: bytes) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(path, data), "html.parser")
    for bad in soup(["script", "style", "noscript", "template", "nav", "footer"]):
        bad.decompose()
    # navigation and tables of contents: links to the headings every chunk carries anyway
    for bad in soup.find_all(
        lambda el: el.get("id") in NAV_IDS or bool(NAV_CLASSES & set(el.get("class") or ()))
    ):
        bad.decompose()
    _place_footnotes(soup)
    out: list[Section] = []
    stack: list[str] = []
    n = 0
    for el in soup.find_all(
        ["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "table", "dt", "dd", "blockquote"]
    ):
        if el.find_parent(["table"]) is not None and el.name != "table":
            continue
        if (
            el.name in ("p", "li", "dt", "dd", "pre", "blockquote")
            and el.find_parent(["li", "blockquote", "dd"]) is not None
        ):
            continue  # nested: the outer element carries the text
        if el.name[0] == "h" and el.name[1:].isdigit():
            level = int(el.name[1:])
            stack[:] = [*stack[: level - 1], " ".join(el.get_text(" ", strip=True).split())]
            continue
        n += 1
        heading = " > ".join(s for s in stack if s)
        if el.name == "table":
            rows = [
                " | ".join(c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"]))
                for tr in el.find_all("tr")
            ]
            text = "\n".join(r for r in rows if r.strip(" |"))
            kind: Kind = "table"
        else:
            text = el.get_text("\n" if el.name == "pre" else " ", strip=True)
            kind = "text"
        if text:
            out.append(Section(text, f"{heading} · 段 {n}" if heading else f"段 {n}", heading, kind))
    if not out:  # no block structure: the visible text
        out.extend(_paragraphs(soup.get_text("\n")))
    return out


BLOCKS = ["p", "li", "dd", "dt", "blockquote", "pre"]
HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]


def _place_footnotes(soup: Any) -> None:
    """Footnotes gathered at the end of a page (DocBook's ``div.footnotes``, pandoc's
    ``section.footnotes``, ``role="doc-endnotes"``) belong to the sentence that cites them: each note
    with a reference in the page moves, as a paragraph, to right after the block holding that
    reference. Left together they would make one chunk about many topics, under the page's last section
    or under no topic at all, that matches many questions and answers none. Notes nobody cites keep a
    heading of their own ("注释", one level under the page's top heading)."""

    def is_notes(el: Any) -> bool:
        return el.get("role") == "doc-endnotes" or bool(FOOTNOTE_CLASSES & set(el.get("class") or ()))

    top = min((int(h.name[1]) for h in soup.find_all(re.compile(r"^h[1-6]$"))), default=1)
    for notes in soup.find_all(is_notes):
        if notes.find_parent(is_notes) is not None or notes.parent is None:
            continue
        for note in notes.find_all(id=True):
            ref = soup.find("a", href=f"#{note['id']}")
            if ref is None or ref.find_parent(is_notes) is not None:
                continue
            # a table keeps its rows together, a heading its title: the note goes after them
            anchor = ref.find_parent("table") or ref.find_parent([*BLOCKS, *HEADINGS]) or ref
            text = " ".join(note.get_text(" ", strip=True).split())
            text = re.sub(r"\s*↩\ufe0e?$", "", text)  # pandoc's back-link
            if text:
                para = soup.new_tag("p")
                para.string = text
                anchor.insert_after(para)
            note.decompose()
        if notes.get_text(strip=True):
            title = soup.new_tag(f"h{min(6, top + 1)}")
            title.string = "注释"
            notes.insert(0, title)
        else:
            notes.decompose()


# ---- pdf -------------------------------------------------------------------------------------------------
@loader("pdf")
def load_pdf(path: Path, data: bytes) -> list[Section]:
    """Text lines page by page, a line in a larger font than the body a heading (the larger, the higher);
    tables kept whole. A PDF of scanned pages has no text to read: that is an error, not an empty file."""
    if not data.startswith(b"%PDF"):
        raise LoadError(f"{path.name}: not a PDF (no %PDF header)")
    import pdfplumber

    from glmkit.kb.structure import Block, has_headings, sections

    pages: list[tuple[int, list[dict[str, Any]], list[Section]]] = []
    sizes: Counter[float] = Counter()
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for pno, page in enumerate(pdf.pages, 1):
            tables = page.find_tables()
            boxes = [t.bbox for t in tables]

            def outside(obj: dict[str, Any], boxes: list[Any] = boxes) -> bool:
                x, top = (
                    (obj.get("x0", 0) + obj.get("x1", 0)) / 2,
                    (obj.get("top", 0) + obj.get("bottom", 0)) / 2,
                )
                return not any(b[0] <= x <= b[2] and b[1] <= top <= b[3] for b in boxes)

            lines = (page.filter(outside) if boxes else page).extract_text_lines(return_chars=True)
            for ln in lines:
                ln["size"] = round(statistics.median(c["size"] for c in ln["chars"]), 1)
                sizes[ln["size"]] += len(ln["chars"])
            found = []
            for t in tables:
                rows = [" | ".join((c or "").replace("\n", " ") for c in row) for row in t.extract() if row]
                table_text = "\n".join(r for r in rows if r.strip(" |"))
                if table_text:
                    found.append(Section(table_text, f"第{pno}页 · 表格", "", "table"))
            pages.append((pno, lines, found))
    if not sizes and not any(t for _, _, t in pages):
        raise LoadError(
            f"{path.name}: no text layer: run OCR first ({len(pages)} page(s) of images or vector drawing)"
        )
    body = sizes.most_common(1)[0][0] if sizes else 0.0
    larger = sorted({s for s in sizes if s >= 1.15 * body}, reverse=True)
    blocks: list[Block | Section] = []
    for pno, lines, found in pages:
        prev: dict[str, Any] | None = None
        for ln in lines:
            rank = larger.index(ln["size"]) + 1 if ln["size"] in larger else None
            gap = ln["top"] - prev["bottom"] if prev is not None else 1e9
            same = (
                prev is not None
                and blocks
                and isinstance(blocks[-1], Block)
                and blocks[-1].rank == rank
                and gap < 0.8 * (ln["bottom"] - ln["top"])
            )
            if same:
                blocks[-1].lines.append(ln["text"])  # type: ignore[union-attr]
            else:
                blocks.append(Block([ln["text"]], rank=rank, where=f"第{pno}页"))
            prev = ln
        blocks.extend(found)
    return sections(blocks, infer=not has_headings(blocks))


# ---- office ----------------------------------------------------------------------------------------------
@loader("docx")
def load_docx(path: Path, data: bytes) -> list[Section]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    from glmkit.kb.structure import Block, has_headings, sections

    d = docx.Document(io.BytesIO(data))
    blocks: list[Block | Section] = []
    n = 0
    for child in d.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            p = Paragraph(child, d)
            text = p.text.strip()
            if not text:
                continue
            style = (p.style.name if p.style is not None else "") or ""
            m = re.match(r"(?:Heading|标题)\s*(\d)", style)
            rank = int(m.group(1)) if m else 0 if style == "Title" else None
            n += rank is None
            blocks.append(Block(text.splitlines(), rank=rank, where=f"段 {n}"))
        elif tag == "tbl":
            t = Table(child, d)
            rows = [" | ".join(c.text.strip() for c in r.cells) for r in t.rows]
            text = "\n".join(r for r in rows if r.strip(" |"))
            if text:
                n += 1
                blocks.append(Section(text, f"表格 {n}", "", "table"))
    return sections(blocks, infer=not has_headings(blocks))


@loader("pptx")
def load_pptx(path: Path, data: bytes) -> list[Section]:
    from pptx import Presentation

    prs = Presentation(io.BytesIO(data))
    out: list[Section] = []
    for sno, slide in enumerate(prs.slides, 1):
        title = ""
        if slide.shapes.title is not None and slide.shapes.title.has_text_frame:
            title = slide.shapes.title.text_frame.text.strip()
        texts: list[str] = []
        for shape in slide.shapes:
            if shape.has_text_frame and shape != slide.shapes.title:
                t = shape.text_frame.text.strip()
                if t:
                    texts.append(t)
            if getattr(shape, "has_table", False) and shape.has_table:
                rows = [" | ".join(c.text.strip() for c in r.cells) for r in shape.table.rows]
                out.append(Section("\n".join(rows), f"幻灯片 {sno} · 表格", title, "table"))
        if texts:
            out.append(Section("\n".join(texts), f"幻灯片 {sno}", title))
    return out


# ---- tables and records ------------------------------------------------------------------------------------
def _pick(header: list[str], keys: tuple[str, ...]) -> int | None:
    low = [h.strip().lower() for h in header]
    for k in keys:
        if k in low:
            return low.index(k)
    return None


def _rows_to_sections(rows: list[list[str]], where: str) -> list[Section]:
    rows = [[(c or "").strip() for c in r] for r in rows if any((c or "").strip() for c in r)]
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    qi, ai = _pick(header, QUESTION_KEYS), _pick(header, ANSWER_KEYS)
    out: list[Section] = []
    if qi is not None and ai is not None and qi != ai:
        for i, r in enumerate(body, 2):
            q = r[qi] if qi < len(r) else ""
            a = r[ai] if ai < len(r) else ""
            if q and a:
                out.append(Section(q, f"{where}行 {i}", "", "faq", a))
        return out
    for i, r in enumerate(body, 2):
        text = "; ".join(f"{h}: {v}" for h, v in zip(header, r, strict=False) if v)
        if text:
            out.append(Section(text, f"{where}行 {i}", "", "table"))
    return out


@loader("csv", "tsv")
def load_csv(path: Path, data: bytes) -> list[Section]:
    text = decode_text(path, data)
    dialect: Any = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    if dialect == "excel":
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
        except csv.Error:
            dialect = "excel"
    return _rows_to_sections(list(csv.reader(io.StringIO(text), dialect)), "")


@loader("xlsx", "xlsm")
def load_xlsx(path: Path, data: bytes) -> list[Section]:
    import openpyxl

    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    out: list[Section] = []
    for ws in wb.worksheets:
        rows = [["" if c is None else str(c) for c in row] for row in ws.iter_rows(values_only=True)]
        out.extend(_rows_to_sections(rows, f"{ws.title} · " if len(wb.worksheets) > 1 else ""))
    wb.close()
    return out


def _record(obj: Any, where: str) -> Section | None:
    if isinstance(obj, str):
        return Section(obj, where) if obj.strip() else None
    if not isinstance(obj, dict):
        return Section(json.dumps(obj, ensure_ascii=False), where) if obj is not None else None
    low = {str(k).lower(): v for k, v in obj.items()}
    q = next((low[k] for k in QUESTION_KEYS if isinstance(low.get(k), str) and low[k].strip()), None)
    a = next((low[k] for k in ANSWER_KEYS if isinstance(low.get(k), str) and low[k].strip()), None)
    if q and a and q is not a:
        return Section(q, where, "", "faq", a)
    text = "; ".join(
        f"{k}: {v}" if not isinstance(v, (dict, list)) else f"{k}: {json.dumps(v, ensure_ascii=False)}"
        for k, v in obj.items()
    )
    return Section(text, where) if text else None


@loader("json")
def load_json(path: Path, data: bytes) -> list[Section]:
    obj = json.loads(decode_text(path, data))
    items = (
        obj
        if isinstance(obj, list)
        else obj.get("data", obj.get("items", [obj]))
        if isinstance(obj, dict)
        else [obj]
    )
    if not isinstance(items, list):
        items = [items]
    return [s for i, o in enumerate(items, 1) if (s := _record(o, f"记录 {i}")) is not None]


@loader("jsonl", "ndjson")
def load_jsonl(path: Path, data: bytes) -> list[Section]:
    out: list[Section] = []
    for i, line in enumerate(decode_text(path, data).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise LoadError(f"{path.name}: line {i} is not JSON ({e.msg})") from None
        s = _record(obj, f"行 {i}")
        if s is not None:
            out.append(s)
    return out
