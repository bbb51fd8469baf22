"""Headings found in text that carries no markup, chunks of a useful size, and the heading path in citations.

``data/debian-faq-excerpt.zh-cn.txt`` is cut verbatim from the Debian FAQ's plain-text form (package
debian-faq-zh-cn 11.1): its title page, the start of its table of contents, chapter 1 (a wrapped
two-line heading) and chapter 8 (commands after "请执行：" lead-ins, NBSP-indented command lines)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from glmkit.kb.loaders import Section, load
from glmkit.kb.service import KnowledgeBases
from glmkit.kb.splitter import split
from glmkit.kb.store import size_stats
from kb_fakes import pdf_bytes

FAQ = Path(__file__).parent / "data" / "debian-faq-excerpt.zh-cn.txt"
CH1 = "第 1 章 定义和概览"
CH8 = "第 8 章 Debian 软件包管理工具"


def headings(sections: list[Section]) -> list[str]:
    return list(dict.fromkeys(s.heading for s in sections))


def test_faq_plain_text_headings_and_no_table_of_contents() -> None:
    secs = load(FAQ)
    assert headings(secs) == [
        "",  # the title page
        "摘要",
        f"{CH1} > 1.1. 本 FAQ 文档是什么？",
        f"{CH1} > 1.2. 什么是 Debian GNU/Linux？",
        f"{CH1} > 1.5. Debian GNU/Linux 与其他 Linux 发行版的区别是什么？为什么我应该选择 Debian，而不是其他发行版？",
        f"{CH8} > 8.2. Debian 声称可以更新正在运行的程序，这是怎么做到的？",
        f"{CH8} > 8.3. 怎么知道 Debian 系统中安装了哪些软件包？",
        f"{CH8} > 8.4. 如何显示已安装的软件包包含的文件？",
        f"{CH8} > 8.5. 如何查出一个特定的文件属于哪个软件包？",
    ]
    text = "\n".join(s.text for s in secs)
    assert "\n目录\n" not in f"\n{text}\n" and "1.3. 好的" not in text  # the table of contents is not body
    # hard-wrapped lines are joined again (no break inside 拷贝), commands keep their own lines
    assert any("允许制作和发布本文档的完整拷贝。" in s.text for s in secs)
    (cmd,) = [s for s in secs if s.text == "dpkg --list"]
    assert cmd.location.endswith("行 98") and cmd.lines == (98, 98)


def test_faq_chunks_pack_paragraphs_and_keep_lead_ins_with_their_commands() -> None:
    pieces = split(load(FAQ), size=400, overlap=60)
    per_heading = Counter(p.heading for p in pieces)
    for p in pieces:
        assert len(p.text) <= 400 * 1.5
        assert len(p.text) >= 80 or per_heading[p.heading] == 1, p  # short only as a whole short section
        assert not p.text.rstrip().endswith(("：", "请执行")), p  # never ends on its lead-in
    (installed,) = [p for p in pieces if p.heading.endswith("8.3. 怎么知道 Debian 系统中安装了哪些软件包？")]
    assert "请执行\ndpkg --list\n" in installed.text and "dpkg --status 软件包名" in installed.text
    assert installed.location.endswith("行 96-109")
    # the 993-paragraphs-one-chunk-each failure: far fewer chunks than paragraphs
    assert len(pieces) * 2 < len(load(FAQ))


def test_numbered_list_items_are_not_headings(tmp_path: Path) -> None:
    doc = (
        "一、准备工作\n\n请按下面的步骤操作：\n\n1. 打开设置页面\n\n2. 点击账户安全\n\n3. 选择修改密码\n\n"
        "二、注意事项\n\n（一）适用范围\n\n本规定适用于全体会员。\n\n（二）生效时间\n\n自发布之日起施行。\n"
    )
    (tmp_path / "a.txt").write_text(doc, "utf-8")
    secs = load(tmp_path / "a.txt")
    assert headings(secs) == [
        "一、准备工作",
        "二、注意事项 > （一）适用范围",
        "二、注意事项 > （二）生效时间",
    ]
    assert [s.text for s in secs][:4] == [
        "请按下面的步骤操作：",
        "1. 打开设置页面",
        "2. 点击账户安全",
        "3. 选择修改密码",
    ]
    assert "请按下面的步骤操作：\n1. 打开设置页面\n2. 点击账户安全\n3. 选择修改密码" in split(secs)[0].text


def test_chapters_articles_underlines_and_capitals(tmp_path: Path) -> None:
    (tmp_path / "law.txt").write_text(
        "第一章 总则\n\n第一条 为了规范会员服务，制定本办法。\n\n第二章 积分\n\n第二节 积分的使用\n\n积分可以抵扣现金。\n",
        "utf-8",
    )
    secs = load(tmp_path / "law.txt")
    assert [(s.heading, s.text) for s in secs] == [
        (
            "第一章 总则",
            "第一条 为了规范会员服务，制定本办法。",
        ),  # an article is body text: it ends as a sentence
        ("第二章 积分 > 第二节 积分的使用", "积分可以抵扣现金。"),
    ]
    (tmp_path / "guide.txt").write_text(
        "INSTALLATION GUIDE\n\nRead this first.\n\nDownloading\n-----------\n\nGet the archive.\n\n"
        "Configuring\n===========\n\nEdit the file.\n\nNOTES\n\nNone yet.\n",
        "utf-8",
    )
    secs = load(tmp_path / "guide.txt")
    assert [(s.heading, s.text) for s in secs] == [
        ("INSTALLATION GUIDE", "Read this first."),
        ("INSTALLATION GUIDE > Downloading", "Get the archive."),
        ("Configuring", "Edit the file."),
        ("NOTES", "None yet."),
    ]


def test_dotted_numbers_must_fit_under_their_chapter(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(
        "1. 安装\n\n下载安装包并运行。\n\n1.1. 系统要求\n\n需要 4GB 内存。\n\n3.2 版本说明\n\n以上是第三章的内容。\n\n"
        "2. 配置\n\n编辑配置文件。\n",
        "utf-8",
    )
    secs = load(tmp_path / "a.txt")
    sub = "1. 安装 > 1.1. 系统要求"
    assert [s.heading for s in secs] == ["1. 安装", sub, sub, sub, "2. 配置"]
    assert secs[2].text == "3.2 版本说明"  # 3.2 under chapter 1 is not a heading


def test_markdown_with_and_without_heading_markup(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "退款指南\n====\n\n## 1. 申请\n\n在订单页申请：\n\n```\n# 不是标题\nrefund --order 42\n```\n\n"
        "## 2. 到账\n\n三到五个工作日。\n",
        "utf-8",
    )
    secs = load(tmp_path / "a.md")
    assert [(s.heading, s.text.splitlines()[0]) for s in secs] == [
        ("退款指南 > 1. 申请", "在订单页申请："),
        ("退款指南 > 1. 申请", "```"),
        ("退款指南 > 2. 到账", "三到五个工作日。"),
    ]
    (piece, _) = split(secs)
    assert "在订单页申请：\n```\n# 不是标题\nrefund --order 42\n```" in piece.text  # lead-in and its code
    (tmp_path / "b.md").write_text("第一章 开始\n\n欢迎使用。\n\n第二章 进阶\n\n更多内容。\n", "utf-8")
    assert headings(load(tmp_path / "b.md")) == ["第一章 开始", "第二章 进阶"]


def test_word_heading_styles_and_numbered_paragraphs(tmp_path: Path) -> None:
    import docx

    d = docx.Document()
    d.add_heading("用户手册", level=1)
    d.add_heading("安装", level=2)
    d.add_paragraph("运行安装程序。")
    t = d.add_table(rows=1, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "系统", "Linux"
    d.add_heading("卸载", level=2)
    d.add_paragraph("删除程序目录。")
    d.save(tmp_path / "styled.docx")
    secs = load(tmp_path / "styled.docx")
    assert [(s.heading, s.kind) for s in secs] == [
        ("用户手册 > 安装", "text"),
        ("用户手册 > 安装", "table"),
        ("用户手册 > 卸载", "text"),
    ]
    assert secs[1].location == "用户手册 > 安装 · 表格 2"

    plain = docx.Document()  # no heading styles: headings are recognised in the text
    for text in ("第一章 总则", "本办法适用于全体会员。", "第二章 积分", "积分可以抵扣现金。"):
        plain.add_paragraph(text)
    plain.save(tmp_path / "plain.docx")
    assert [(s.heading, s.text) for s in load(tmp_path / "plain.docx")] == [
        ("第一章 总则", "本办法适用于全体会员。"),
        ("第二章 积分", "积分可以抵扣现金。"),
    ]


def test_pdf_lines_in_a_larger_font_are_headings(tmp_path: Path) -> None:
    body = "The installer copies the files and asks a few questions."
    lines = [(20.0, "User Guide"), (14.0, "Installing"), (10.0, body), (10.0, body),
             (14.0, "Removing"), (10.0, "Delete the program folder and its settings.")]  # fmt: skip
    (tmp_path / "a.pdf").write_bytes(pdf_bytes(lines))
    secs = load(tmp_path / "a.pdf")
    assert [(s.heading, s.location) for s in secs] == [
        ("User Guide > Installing", "User Guide > Installing · 第1页"),
        ("User Guide > Removing", "User Guide > Removing · 第1页"),
    ]
    assert secs[0].text == f"{body}\n{body}"


def test_citations_carry_the_heading_path(kbs: KnowledgeBases, tmp_path: Path) -> None:
    gz = tmp_path / "debian-faq.zh-cn.txt.gz"
    gz.write_bytes(gzip.compress(FAQ.read_bytes()))  # the FAQ's own packaging: read as the .txt inside
    kbs.create("faq")
    r = kbs.add("faq", [gz])
    assert r.files[0].status == "added", r.files[0]
    hit = kbs.search(["faq"], "某个文件是哪个软件包的 dpkg --search", k=3, mode="bm25")[0]
    d = hit.as_dict()
    assert d["heading"] == f"{CH8} > 8.5. 如何查出一个特定的文件属于哪个软件包？"
    assert str(d["location"]).startswith(f"{d['heading']} · 行 ")
    sizes = size_stats(kbs.store.chunk_lengths("faq")[kbs.store.list_documents("faq")[0].id])
    assert 80 <= sizes["median"] <= 400 and sizes["max"] <= 600 and sizes["min"] > 0


def test_kb_docs_json_reports_chunk_sizes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "GLMKIT_HOME": str(home)}
    run = [sys.executable, "-m", "glmkit", "kb"]
    subprocess.run([*run, "create", "faq"], env=env, check=True, capture_output=True)
    subprocess.run([*run, "add", "faq", str(FAQ)], env=env, check=True, capture_output=True)
    out = subprocess.run([*run, "docs", "faq", "--json"], env=env, check=True, capture_output=True, text=True)
    (doc,) = json.loads(out.stdout)
    sizes = doc["chunk_chars"]
    assert doc["n_chunks"] >= 8 and 0 < sizes["min"] <= sizes["median"] <= sizes["max"] <= 600


def test_html_footnotes_join_the_block_that_cites_them(tmp_path: Path) -> None:
    """DocBook and pandoc footnotes gathered at the page's end move to the paragraph, list item, table
    or heading citing them; an uncited one keeps the "注释" heading."""
    html = (
        "<h1>第 11 章 定制</h1>"
        '<h2>11.6 运行级别</h2><p>默认的 init 是 systemd<a id="r6" href="#ftn.r6" class="footnote"><sup>[6]</sup></a>。</p>'
        "<p>另一段。</p>"
        '<h2>11.7 表格<a href="#fn2" class="footnote-ref" role="doc-noteref"><sup>2</sup></a></h2>'
        '<table><tr><td>a<a href="#fn3"><sup>3</sup></a></td><td>b</td></tr></table>'
        '<ul><li><p>列表项<a href="#fn4"><sup>4</sup></a></p></li></ul>'
        '<div class="footnotes"><div id="ftn.r6" class="footnote"><p><a href="#r6"><sup>[6]</sup></a>'
        " 2014 年改为 systemd。</p></div>"
        '<div id="ftn.x" class="footnote"><p>[7] 无人引用的注释。</p></div></div>'
        '<section class="footnotes" role="doc-endnotes"><ol><li id="fn2"><p>标题的注释 <a href="#fnref2">↩︎</a></p></li>'
        '<li id="fn3"><p>表格的注释</p></li><li id="fn4"><p>列表的注释</p></li></ol></section>'
    )
    (tmp_path / "a.html").write_text(html, "utf-8")
    got = [(s.heading.split(" > ")[-1], s.text) for s in load(tmp_path / "a.html")]
    assert got == [
        ("11.6 运行级别", "默认的 init 是 systemd [6] 。"),
        ("11.6 运行级别", "[6] 2014 年改为 systemd。"),
        ("11.6 运行级别", "另一段。"),
        ("11.7 表格 2", "标题的注释"),
        ("11.7 表格 2", "a 3 | b"),
        ("11.7 表格 2", "表格的注释"),
        ("11.7 表格 2", "列表项 4 列表的注释"),
        ("注释", "[7] 无人引用的注释。"),
    ]


def test_html_contents_and_navigation_are_dropped_and_footnotes_stand_apart(tmp_path: Path) -> None:
    html = (
        '<div class="navheader"><table><tr><th>第 6 章</th><td>下一页</td></tr></table></div>'
        '<h1>第 6 章 Debian\u00a0档案库</h1><div class="toc"><p>目录</p><dl><dt>6.1. 有多少种发布版本？</dt></dl></div>'
        "<h2>6.1. 有多少种发布版本？</h2><p>有三种：稳定版、测试版和不稳定版。</p>"
        '<div class="footnotes"><p>[1] 过去还有一个 frozen 版本。</p></div>'
    )
    (tmp_path / "a.html").write_text(html, "utf-8")
    secs = load(tmp_path / "a.html")
    assert [(s.heading, s.text) for s in secs] == [
        ("第 6 章 Debian 档案库 > 6.1. 有多少种发布版本？", "有三种：稳定版、测试版和不稳定版。"),
        ("第 6 章 Debian 档案库 > 注释", "[1] 过去还有一个 frozen 版本。"),
    ]
