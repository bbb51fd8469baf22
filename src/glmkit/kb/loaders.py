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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from glmkit.errors import InvalidRequestError

MAX_FILE_BYTES = 50 * 1024 * 1024
Kind = Literal["text", "table", "faq"]

QUESTION_KEYS = ("question", "q", "问题", "问", "标准问", "标准问题", "query", "title", "标题")
ANSWER_KEYS = ("answer", "a", "答案", "答", "回答", "标准答案", "reply", "response", "content")


class LoadError(InvalidRequestError):
    code = "unreadable_document"


@dataclass(frozen=True)
class Section:
    text: str
    location: str  # where in the source: "第3页", "行 12", "安装 > 下载", "幻灯片 2"
    heading: str = ""  # heading path, carried into every chunk cut from this section
    kind: Kind = "text"
    answer: str = ""  # FAQ entries: text is the question, answer the answer


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
    text = decode_text(path, data)
    if _control_ratio(text) > 0.01:
        raise LoadError(f"{path.name}: looks like a binary file (control characters), not text")
    return list(_paragraphs(text))


HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@loader("md", "markdown")
def load_md(path: Path, data: bytes) -> list[Section]:
    text = decode_text(path, data)
    if _control_ratio(text) > 0.01:
        raise LoadError(f"{path.name}: looks like a binary file (control characters), not text")
    out: list[Section] = []
    stack: list[str] = []
    block: list[str] = []
    block_start = 1
    in_fence = False

    def flush(end: int) -> None:
        if block:
            out.extend(_paragraphs("\n".join(block), " > ".join(stack), block_start))
            block.clear()

    for i, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        m = None if in_fence else HEADING.match(line)
        if m:
            flush(i - 1)
            level = len(m.group(1))
            stack[:] = [*stack[: level - 1], m.group(2)]
            block_start = i + 1
            continue
        if not block:
            block_start = i
        block.append(line)
    flush(0)
    return out


# ---- html ------------------------------------------------------------------------------------------------
@loader("html", "htm", "xhtml")
def load_html(path: Path, data: bytes) -> list[Section]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(path, data), "html.parser")
    for bad in soup(["script", "style", "noscript", "template", "nav", "footer"]):
        bad.decompose()
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
            stack[:] = [*stack[: level - 1], el.get_text(" ", strip=True)]
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


# ---- pdf -------------------------------------------------------------------------------------------------
@loader("pdf")
def load_pdf(path: Path, data: bytes) -> list[Section]:
    if not data.startswith(b"%PDF"):
        raise LoadError(f"{path.name}: not a PDF (no %PDF header)")
    import pdfplumber

    out: list[Section] = []
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

            text = (page.filter(outside) if boxes else page).extract_text() or ""
            for s in _paragraphs(text):
                out.append(Section(s.text, f"第{pno}页", "", "text"))
            for t in tables:
                rows = [" | ".join((c or "").replace("\n", " ") for c in row) for row in t.extract() if row]
                table_text = "\n".join(r for r in rows if r.strip(" |"))
                if table_text:
                    out.append(Section(table_text, f"第{pno}页 · 表格", "", "table"))
    return out


# ---- office ----------------------------------------------------------------------------------------------
@loader("docx")
def load_docx(path: Path, data: bytes) -> list[Section]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    d = docx.Document(io.BytesIO(data))
    out: list[Section] = []
    stack: list[str] = []
    n = 0
    body = d.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            p = Paragraph(child, d)
            text = p.text.strip()
            style = (p.style.name if p.style is not None else "") or ""
            m = re.match(r"(?:Heading|标题)\s*(\d)", style)
            if m and text:
                level = int(m.group(1))
                stack[:] = [*stack[: level - 1], text]
                continue
            if style == "Title" and text:
                stack[:] = [text]
                continue
            if text:
                n += 1
                heading = " > ".join(stack)
                out.append(Section(text, f"{heading} · 段 {n}" if heading else f"段 {n}", heading))
        elif tag == "tbl":
            t = Table(child, d)
            rows = [" | ".join(c.text.strip() for c in r.cells) for r in t.rows]
            text = "\n".join(r for r in rows if r.strip(" |"))
            if text:
                n += 1
                heading = " > ".join(stack)
                out.append(Section(text, f"{heading} · 表格" if heading else f"表格 {n}", heading, "table"))
    return out


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
