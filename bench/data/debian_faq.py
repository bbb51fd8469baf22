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
