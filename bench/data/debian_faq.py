#!/usr/bin/env python3
"""Extract (question, answer) pairs from Debian package `debian-faq-zh-cn` (11.1).

Usage: python3 debian_faq.py [FAQ_HTML_DIR] [--json OUT.jsonl] [--questions-only]

FAQ_HTML_DIR defaults to the dpkg -x tree:
    ./faq/usr/share/doc/debian/FAQ/zh-cn   (or /usr/share/doc/debian/FAQ/zh-cn)

Structure (DocBook XSL chunked XHTML, one file per chapter, UTF-8):
  <div class="chapter"> <h1 class="title"><a id="basic-defs"/>第 1 章 定义和概览</h1>
     <div class="section"> <h2 class="title"><a id="whatisfaq"/>1.1. 本 FAQ 文档是什么？</h2>
         <p>answer...</p>
         <div class="section"> <h3 class="title">3.1.1. ...</h3> ... </div>   (sub-questions)
  112 <h2> sections = one record each; the answer is all text of that section
  (h3/h4 subsections included, their headings kept as lines). 9 of the 112
  (chapter 15 "next release" and chapter 16 "about this FAQ") are not phrased
  as questions; --questions-only drops them (-> 103).
Stdlib only.
"""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

VOID = {"br", "img", "hr", "meta", "link", "input", "col", "area", "base", "wbr"}
BLOCK = {
    "p",
    "div",
    "pre",
    "li",
    "dt",
    "dd",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "table",
    "ul",
    "ol",
    "dl",
    "blockquote",
    "br",
}


class Node:
    __slots__ = ("attrs", "children", "parent", "tag")

    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.children, self.parent = tag, dict(attrs), [], parent


class TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def walk(n):
    yield n
    for c in n.children:
        if isinstance(c, Node):
            yield from walk(c)


def classes(n):
    return n.attrs.get("class", "").split()


def text_of(n, pre=False) -> str:
    """Text with block elements on their own lines; whitespace collapsed outside <pre>."""
    out = []

    def rec(x, in_pre):
        if isinstance(x, str):
            out.append(x if in_pre else re.sub(r"\s+", " ", x))
            return
        if x.tag in ("script", "style"):
            return
        blk = x.tag in BLOCK
        if blk:
            out.append("\n")
        for c in x.children:
            rec(c, in_pre or x.tag == "pre")
        if blk:
            out.append("\n")

    rec(n, pre)
    txt = "\n".join(ln.strip() for ln in "".join(out).split("\n"))
    return re.sub(r"\n{2,}", "\n", txt).strip()


def heading(sec, level):
    for c in walk(sec):
        if c.tag == level and "title" in classes(c):
            return c
    return None


def parse_file(path: Path):
    tb = TreeBuilder()
    tb.feed(path.read_text(encoding="utf-8"))
    chapter = next((n for n in walk(tb.root) if n.tag == "div" and "chapter" in classes(n)), None)
    if chapter is None:
        return []
    h1 = heading(chapter, "h1")
    chap_title = text_of(h1) if h1 else ""
    recs = []
    for n in walk(chapter):
        if n.tag == "div" and "section" in classes(n):
            h2 = heading(n, "h2")
            # top-level section only: its own title is an h2 in its first titlepage
            tp = next((c for c in n.children if isinstance(c, Node) and "titlepage" in classes(c)), None)
            if tp is None or h2 is None or heading(tp, "h2") is not h2:
                continue
            anchor = next((a.attrs.get("id") for a in walk(h2) if a.tag == "a" and a.attrs.get("id")), "")
            title = re.sub(r"\s+", " ", text_of(h2))
            m = re.match(r"^(\d+(?:\.\d+)*)\.\s*(.*)$", title)
            num, q = (m.group(1), m.group(2)) if m else ("", title)
            body = Node("div", {}, None)
            body.children = [c for c in n.children if c is not tp]
            recs.append(
                {
                    "num": num,
                    "question": q,
                    "answer": text_of(body),
                    "chapter": chap_title,
                    "file": path.name,
                    "anchor": anchor,
                }
            )
    return recs


def extract(d: Path, questions_only=False):
    recs = []
    for f in sorted(d.glob("*.zh-cn.html")):
        if f.name != "index.zh-cn.html":
            recs += parse_file(f)
    recs.sort(key=lambda r: tuple(int(x) for x in r["num"].split(".")) if r["num"] else (999,))
    if questions_only:
        recs = [
            r
            for r in recs
            if r["question"].rstrip().endswith(("？", "?", "！", "!")) or "？" in r["question"]
        ]
    return recs


INLINE_CODE = {"code", "tt", "kbd", "samp"}


def to_markdown(d: Path) -> str:
    """The whole FAQ as one Markdown file, as a converter (pandoc and the like) would write it: ``#`` per
    heading level, paragraphs, ``-`` list items, fenced ``<pre>`` blocks, ``[text](url)`` for external
    links; navigation and the per-chapter tables of contents left out. Chapters in their numeric order."""
    files = []
    for f in d.glob("*.zh-cn.html"):
        tb = TreeBuilder()
        tb.feed(f.read_text(encoding="utf-8"))
        chapter = next((n for n in walk(tb.root) if n.tag == "div" and "chapter" in classes(n)), None)
        h1 = heading(chapter, "h1") if chapter is not None else None
        m = re.search(r"第\s*(\d+)\s*章", text_of(h1)) if h1 is not None else None
        if chapter is not None and m:
            files.append((int(m.group(1)), chapter))
    out: list[str] = []
    for _, chapter in sorted(files, key=lambda x: x[0]):
        _md_block(chapter, out, 0)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def _md_inline(n) -> str:
    parts = []
    for c in n.children:
        if isinstance(c, str):
            parts.append(re.sub(r"\s+", " ", c))
        elif c.tag in INLINE_CODE or "literal" in classes(c) or "command" in classes(c):
            t = re.sub(r"\s+", " ", text_of(c))
            parts.append(f"`{t}`" if t else "")
        elif c.tag == "a" and c.attrs.get("href", "").startswith(("http://", "https://", "ftp://")):
            parts.append(f"[{_md_inline(c).strip()}]({c.attrs['href']})")
        elif c.tag in ("strong", "b"):
            parts.append(f"**{_md_inline(c).strip()}**")
        elif c.tag == "br":
            parts.append("\n")
        else:
            parts.append(_md_inline(c))
    return "".join(parts)


def _md_block(n, out: list[str], depth: int) -> None:
    for c in n.children:
        if isinstance(c, str):
            if c.strip():
                out.append(c.strip() + "\n")
            continue
        if c.tag in ("script", "style") or {"toc", "navheader", "navfooter"} & set(classes(c)):
            continue
        if c.tag in ("h1", "h2", "h3", "h4", "h5"):
            out.append("#" * int(c.tag[1]) + " " + re.sub(r"\s+", " ", text_of(c)).strip() + "\n")
        elif c.tag == "p":
            t = _md_inline(c).strip()
            if t:
                out.append(t + "\n")
        elif c.tag == "pre":
            out.append("```\n" + text_of(c, pre=True).rstrip("\n") + "\n```\n")
        elif c.tag in ("ul", "ol"):
            for i, li in enumerate((x for x in c.children if isinstance(x, Node) and x.tag == "li"), 1):
                mark = "-" if c.tag == "ul" else f"{i}."
                sub: list[str] = []
                _md_block(li, sub, depth + 1)
                body = "\n".join(sub).strip().split("\n")
                pad = " " * (len(mark) + 1)
                out.append(f"{mark} {body[0]}" + "".join(f"\n{pad}{ln}" if ln else "\n" for ln in body[1:]) + "\n")
        elif c.tag == "dt":
            term = re.sub(r"\s+", " ", text_of(c)).strip()
            out.append(f"**{term}**\n")
        else:
            _md_block(c, out, depth)


def main(argv):
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?")
    ap.add_argument("--json")
    ap.add_argument("--questions-only", action="store_true")
    a = ap.parse_args(argv)
    d = (
        Path(a.dir)
        if a.dir
        else next(
            c
            for c in (
                Path(__file__).parent / "faq/usr/share/doc/debian/FAQ/zh-cn",
                Path("/usr/share/doc/debian/FAQ/zh-cn"),
            )
            if c.is_dir()
        )
    )
    recs = extract(d, questions_only=a.questions_only)
    print(f"pairs: {len(recs)}  (empty answers: {sum(not r['answer'] for r in recs)})")
    for r in (recs[0], recs[20], recs[60]):
        print(f"--- [{r['num']}] {r['question']}  ({r['file']}#{r['anchor']})")
        print(r["answer"][:300].replace("\n", " / "), "..." if len(r["answer"]) > 300 else "")
    if a.json:
        Path(a.json).write_text(
            "\n".join(json.dumps(r, ensure_ascii=False) for r in recs) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
