"""Loaders read every supported format into located sections; the splitter respects Chinese sentences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmkit.kb.loaders import LoadError, load
from glmkit.kb.splitter import sentences, split


def write(tmp: Path, name: str, data: bytes | str, enc: str = "utf-8") -> Path:
    p = tmp / name
    p.write_bytes(data.encode(enc) if isinstance(data, str) else data)
    return p


def test_text_encodings_are_detected(tmp_path: Path) -> None:
    text = "会员积分说明。每消费一元获得一个积分。\n\n积分有效期为一年。"
    for enc, name in (("utf-8", "a.txt"), ("gb18030", "b.txt"), ("utf-16", "c.txt"), ("utf-8-sig", "d.txt")):
        secs = load(write(tmp_path, name, text, enc))
        assert [s.text for s in secs] == ["会员积分说明。每消费一元获得一个积分。", "积分有效期为一年。"], enc
        assert secs[1].location == "行 3"


def test_markdown_headings_travel_with_sections(tmp_path: Path) -> None:
    md = "# 退款政策\n\n## 申请退款\n七天内可以退款。\n\n```\n# not a heading\n```\n\n# 配送\n顺丰快递。\n"
    secs = load(write(tmp_path, "a.md", md))
    assert [(s.heading, s.text.splitlines()[0]) for s in secs] == [
        ("退款政策 > 申请退款", "七天内可以退款。"),
        ("退款政策 > 申请退款", "```"),
        ("配送", "顺丰快递。"),
    ]


def test_html_tables_and_headings(tmp_path: Path) -> None:
    html = "<html><script>evil()</script><h1>价格</h1><p>以下是价格表。</p><table><tr><th>套餐</th><th>价格</th></tr><tr><td>基础版</td><td>99元</td></tr></table></html>"
    secs = load(write(tmp_path, "a.html", html))
    assert secs[0].text == "以下是价格表。" and secs[0].heading == "价格"
    assert secs[1].kind == "table" and "基础版 | 99元" in secs[1].text
    assert all("evil" not in s.text for s in secs)


def test_csv_and_jsonl_question_answer_tables_become_faq(tmp_path: Path) -> None:
    secs = load(write(tmp_path, "faq.csv", "问题,答案\n发票怎么开？,在订单详情页申请。\n"))
    assert secs[0].kind == "faq" and secs[0].text == "发票怎么开？" and secs[0].answer == "在订单详情页申请。"
    rows = [{"question": "怎么退款", "answer": "七天内申请"}, {"title": "x", "body": "普通记录"}]
    secs = load(write(tmp_path, "a.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)))
    assert secs[0].kind == "faq" and secs[1].kind == "text" and "普通记录" in secs[1].text


def test_office_and_pdf_formats(tmp_path: Path) -> None:
    import docx
    import openpyxl
    from pptx import Presentation

    d = docx.Document()
    d.add_heading("安装指南", level=1)
    d.add_paragraph("运行安装程序，按提示完成。")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text, t.cell(1, 0).text, t.cell(1, 1).text = (
        "系统",
        "要求",
        "Linux",
        "4GB内存",
    )
    d.save(tmp_path / "a.docx")
    secs = load(tmp_path / "a.docx")
    assert secs[0].heading == "安装指南" and secs[0].text == "运行安装程序，按提示完成。"
    assert secs[1].kind == "table" and "Linux | 4GB内存" in secs[1].text

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["question", "answer"])
    ws.append(["营业时间？", "每天九点到晚上九点。"])
    wb.save(tmp_path / "a.xlsx")
    assert load(tmp_path / "a.xlsx")[0].answer == "每天九点到晚上九点。"

    prs = Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[1])
    slide.shapes.title.text = "季度总结"
    slide.placeholders[1].text = "销售额增长百分之二十。"
    prs.save(tmp_path / "a.pptx")
    (s,) = load(tmp_path / "a.pptx")
    assert s.heading == "季度总结" and "增长" in s.text and s.location == "幻灯片 1"


def test_bad_files_get_clear_errors(tmp_path: Path) -> None:
    cases = {
        "empty.txt": b"",
        "binary.txt": bytes(range(256)) * 10,
        "broken.pdf": b"%PDF-1.4\n1 0 obj <<>> garbage",
        "notpdf.pdf": b"hello",
        "a.exe": b"MZ....",
        "bad.jsonl": b'{"a": 1}\n{oops\n',
    }
    expect = {
        "empty.txt": "empty",
        "binary.txt": "binary",
        "broken.pdf": "cannot parse",
        "notpdf.pdf": "not a PDF",
        "a.exe": "unsupported file type",
        "bad.jsonl": "line 2 is not JSON",
    }
    for name, data in cases.items():
        with pytest.raises(LoadError, match=expect[name]) as e:
            load(write(tmp_path, name, data))
        assert name in e.value.message
    big = write(tmp_path, "big.txt", "字" * 2000)
    with pytest.raises(LoadError, match="over the 1000-byte limit"):
        load(big, max_bytes=1000)


def test_sentences_and_packing() -> None:
    assert sentences("你好。今天天气很好！他说：“走吧。”最后……结束\nEnd. Next one") == [
        "你好。",
        "今天天气很好！",
        "他说：“走吧。”",
        "最后……",
        "结束",
        "End.",
        "Next one",
    ]
    from glmkit.kb.loaders import Section

    text = "".join(f"这是第{i}句话。" for i in range(100))
    pieces = split([Section(text, "行 1", "标题")], size=100, overlap=20)
    assert all(len(p.text) <= 100 for p in pieces) and all(p.heading == "标题" for p in pieces)
    assert all(p.text.endswith("。") for p in pieces)  # cut between sentences
    assert sentences(pieces[0].text)[-1] in sentences(pieces[1].text)[:3]  # overlap repeats the tail
    joined = {s for p in pieces for s in sentences(p.text)}
    assert joined == set(sentences(text))  # nothing lost
    table = Section("a | b\n" + "\n".join(f"{i} | {i * 2}" for i in range(5)), "表", kind="table")
    assert len(split([table], size=100, overlap=10)) == 1
