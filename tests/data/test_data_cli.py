"""``glmkit data …`` end to end through ``glmkit.cli.main``: stdin/stdout, JSONL fields, summaries,
reports, and outputs that are whole or absent."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from glmkit.cli import main
from glmkit.data import clean as clean_module


def stdin(monkeypatch: pytest.MonkeyPatch, text: str | bytes) -> None:
    data = text.encode("utf-8") if isinstance(text, str) else text
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def jsonl(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_mask_stdin_to_stdout_with_counts_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(
        monkeypatch,
        "电话 138-0013-8000，身份证 11010519491231002X\n订单号 202310011234567890\n邮箱 a@example.com\n",
    )
    assert main(["data", "mask", "-"]) == 0
    out, err = capsys.readouterr()
    assert out == "电话 [手机号]，身份证 [身份证号]\n订单号 202310011234567890\n邮箱 [邮箱]\n"
    assert "3 records, 2 changed" in err and "mobile 1" in err and "id_card 1" in err and "email 1" in err


def test_mask_json_summary_goes_to_stderr_when_data_goes_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin(monkeypatch, "13800138000 和 13912345678\n")
    assert main(["data", "mask", "-", "-o", "-", "--json"]) == 0
    out, err = capsys.readouterr()
    assert out == "[手机号] 和 [手机号]\n"
    assert json.loads(err) == {"read": 1, "records_changed": 1, "masked": {"mobile": 2}, "total": 2}


def test_mask_jsonl_fields_keep_the_rest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    rows = [
        {
            "id": 7,
            "instruction": "给13800138000回电话",
            "output": "好的，已拨打 13800138000",
            "meta": {"k": "13800138000"},
        }
    ]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    dst = tmp_path / "out.jsonl"
    assert (
        main(
            [
                "data",
                "mask",
                str(src),
                "-o",
                str(dst),
                "--field",
                "instruction",
                "--field",
                "output",
                "--json",
            ]
        )
        == 0
    )
    assert jsonl(dst) == [
        {
            "id": 7,
            "instruction": "给[手机号]回电话",
            "output": "好的，已拨打 [手机号]",
            "meta": {"k": "13800138000"},
        }
    ]
    assert json.loads(capsys.readouterr().out)["masked"] == {"mobile": 2}


def test_a_bad_jsonl_line_names_file_and_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a"}\n{"text": "b"}\n{"text": 3}\n', encoding="utf-8")
    dst = tmp_path / "out.jsonl"
    assert main(["data", "mask", str(src), "-o", str(dst), "--field", "text"]) == 1
    assert f"{src}:3: field 'text' must be a string" in capsys.readouterr().err
    assert not dst.exists() and leftovers(tmp_path) == []


def test_not_utf8_is_an_error_with_the_line_and_the_old_output_survives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes("第一行\n第二行\n".encode() + "第三行\n".encode("gbk"))
    dst = tmp_path / "out.txt"
    dst.write_text("previous result\n", encoding="utf-8")
    assert main(["data", "clean", str(src), "-o", str(dst)]) == 1
    assert f"{src}:3: not UTF-8" in capsys.readouterr().err
    assert dst.read_text(encoding="utf-8") == "previous result\n" and leftovers(tmp_path) == []


def test_a_crash_midway_leaves_no_partial_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in.txt"
    src.write_text("".join(f"第{i}行内容\n" for i in range(1000)), encoding="utf-8")
    dst = tmp_path / "out.txt"
    real = clean_module.Cleaner.clean
    calls = {"n": 0}

    def flaky(self: clean_module.Cleaner, text: str) -> str:
        calls["n"] += 1
        if calls["n"] == 600:
            raise RuntimeError("disk on fire")
        return real(self, text)

    monkeypatch.setattr(clean_module.Cleaner, "clean", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        main(["data", "clean", str(src), "-o", str(dst)])
    assert calls["n"] == 600
    assert not dst.exists() and leftovers(tmp_path) == []
    monkeypatch.setattr(clean_module.Cleaner, "clean", real)
    assert main(["data", "clean", str(src), "-o", str(dst)]) == 0
    assert len(dst.read_text(encoding="utf-8").splitlines()) == 1000


def test_clean_plain_text_records_stay_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.txt"
    src.write_text("<p>第一段</p><p>第二段</p>\n\n版权所有 © 2024\nＡＩ　模型，很好用！\n", encoding="utf-8")
    assert main(["data", "clean", str(src), "--json"]) == 0
    out, err = capsys.readouterr()
    assert out == "第一段 第二段\nAI 模型，很好用！\n"
    assert json.loads(err) == {"read": 4, "written": 2, "dropped_empty": 2}


def test_clean_t2s_on_a_field(tmp_path: Path) -> None:
    import opencc  # noqa: F401  (a pinned dependency: a missing one must fail, not skip)
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"text": "<b>繁體中文</b>\n第二行", "n": 1}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    dst = tmp_path / "out.jsonl"
    assert main(["data", "clean", str(src), "-o", str(dst), "--field", "text", "--t2s"]) == 0
    assert jsonl(dst) == [{"text": "繁体中文\n第二行", "n": 1}]


def test_segment_with_userdict_and_stopwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "user.dict"
    d.write_text("云栖问答机 10 n\n", encoding="utf-8")
    stdin(monkeypatch, "我们的云栖问答机是最好的\n\nThe answer is fast\n")
    assert main(["data", "segment", "-", "--userdict", str(d), "--stopwords", "zh", "--stopwords", "en"]) == 0
    out, _ = capsys.readouterr()
    assert out == "云栖问答机 最好\n\nanswer fast\n"


def test_dedupe_with_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = (
        "退货政策：签收后七天内可以无理由退货，商品需保持完好，赠品需一并退回，运费由买家承担，特价商品除外。"
        "退款会在收到退货后三个工作日内原路退回，使用优惠券的订单按实际支付金额退款，积分同时扣回。"
    )
    lines = [
        base,
        "完全不相关的一句话，讲的是红烧肉怎么做。",
        base.replace("七天", "十天"),
        base + " ",
        "第三条无关内容：明天下雨记得带伞。",
    ]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dst, rep = tmp_path / "out.txt", tmp_path / "dropped.jsonl"
    assert main(["data", "dedupe", str(src), "-o", str(dst), "--report", str(rep), "--json"]) == 0
    assert dst.read_text(encoding="utf-8").splitlines() == [lines[0], lines[1], lines[4]]
    report = jsonl(rep)
    assert [(r["line"], r["duplicate_of"], r["kind"]) for r in report] == [(3, 1, "near"), (4, 1, "exact")]
    assert 0.8 <= report[0]["similarity"] < 1.0 and report[1]["similarity"] == 1.0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["read"], summary["written"], summary["exact"], summary["near"]) == (5, 3, 1, 1)


def test_convert_reports_invalid_lines_and_writes_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "train.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps({"instruction": "你好", "output": "你好！"}, ensure_ascii=False),
                "{broken json",
                json.dumps({"messages": [{"role": "user", "content": "只有问题"}]}, ensure_ascii=False),
                json.dumps(
                    {"conversations": [{"from": "human", "value": "在吗"}, {"from": "gpt", "value": "在"}]},
                    ensure_ascii=False,
                ),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    dst, errs = tmp_path / "chatglm3.jsonl", tmp_path / "errors.jsonl"
    assert main(["data", "convert", str(src), "-o", str(dst), "--errors", str(errs)]) == 0
    assert jsonl(dst) == [
        {"conversations": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]},
        {"conversations": [{"role": "user", "content": "在吗"}, {"role": "assistant", "content": "在"}]},
    ]
    err = capsys.readouterr().err
    assert f"{src}:2: skipped: not valid JSON" in err
    assert f"{src}:3: skipped: the conversation ends with user" in err
    assert "4 records read, 2 written, 2 invalid skipped" in err
    assert [e["line"] for e in jsonl(errs)] == [2, 3]


def test_convert_json_summary_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "alpaca.csv"
    src.write_text('instruction,input,output\n写诗,,"床前明月光，\n疑是地上霜。"\n,,\n', encoding="utf-8")
    dst = tmp_path / "out.jsonl"
    assert main(["data", "convert", str(src), "-o", str(dst), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["read"], summary["written"], summary["invalid"]) == (2, 1, 1)
    assert summary["errors"][0]["line"] == 4
    assert jsonl(dst)[0]["conversations"][1]["content"] == "床前明月光，\n疑是地上霜。"


def test_convert_with_no_valid_record_fails_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "no format"}\n{"messages": []}\n', encoding="utf-8")
    dst = tmp_path / "out.jsonl"
    assert main(["data", "convert", str(src), "-o", str(dst)]) == 1
    assert "no valid records (2 invalid; line 1: cannot tell the format" in capsys.readouterr().err
    assert not dst.exists() and leftovers(tmp_path) == []


def test_convert_refuses_a_json_array_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "data.json"
    src.write_text(json.dumps([{"instruction": "a", "output": "b"}], indent=2), encoding="utf-8")
    assert main(["data", "convert", str(src), "-o", str(tmp_path / "o.jsonl")]) == 1
    assert "jq -c '.[]'" in capsys.readouterr().err


def test_convert_stdin_to_stdout(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stdin(
        monkeypatch,
        json.dumps(
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
        )
        + "\n",
    )
    assert main(["data", "convert", "-", "-o", "-", "--from", "openai"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out) == {
        "conversations": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    }


def test_missing_input_and_missing_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "clean", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "o.txt")]) == 1
    assert "nope.txt: no such file" in capsys.readouterr().err
    src = tmp_path / "in.txt"
    src.write_text("x\n", encoding="utf-8")
    assert main(["data", "clean", str(src), "-o", str(tmp_path / "no" / "o.txt")]) == 1
    assert "does not exist" in capsys.readouterr().err
