"""``glmkit eval …`` end to end through ``glmkit.cli.main``: JSON output, tables, report folders with
embedded charts, and clear errors for bad input files."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from glmkit.cli import main
from glmkit.errors import InvalidRequestError
from glmkit.pipeline import evaluate as E

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, object]]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def check_report_dir(folder: Path, charts: list[str]) -> None:
    for name in ["report.json", "report.md", "report.html", *charts]:
        assert (folder / name).is_file(), name
    for name in charts:
        assert (folder / name).read_bytes().startswith(PNG_MAGIC)
        assert f"]({name})" in (folder / name).parent.joinpath("report.md").read_text(encoding="utf-8")
    page = (folder / "report.html").read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(charts)
    for data in images:
        assert base64.b64decode(data).startswith(PNG_MAGIC)
    assert "<script" not in page and 'src="http' not in page  # self-contained
    assert not list(folder.glob(".*.tmp"))  # no temporary file left over


def test_classify_json_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # By hand: 4 of 6 right -> accuracy 2/3; label c: tp 2, predicted 2, gold 3 -> P 1, R 2/3, F1 4/5.
    pred = write(tmp_path / "pred.txt", "a\nb\nb\nc\nc\na\n")
    gold = write(tmp_path / "gold.txt", "a\na\nb\nc \nc\nc\n")  # labels are stripped
    code, d = run_json(
        capsys,
        ["eval", "classify", "--pred", str(pred), "--gold", str(gold), "--report", str(tmp_path / "r")],
    )
    assert code == 0
    assert d["kind"] == "classification" and d["n"] == 6
    assert d["accuracy"] == pytest.approx(2 / 3)
    per_class = d["per_class"]
    assert isinstance(per_class, dict)
    assert per_class["c"] == {
        "precision": 1.0,
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(0.8),
        "support": 3,
    }
    assert d["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 1, 0], [1, 0, 2]]}
    assert d["sources"] == {"pred": str(pred), "gold": str(gold)}
    files = d["report_files"]
    assert isinstance(files, dict) and Path(files["html"]).is_file()
    check_report_dir(tmp_path / "r", ["f1_per_class.png", "confusion_matrix.png"])
    saved = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert saved["accuracy"] == d["accuracy"]


def test_classify_table_and_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = write(
        tmp_path / "pred.jsonl", '{"prediction": "退款"}\n{"prediction": "咨询"}\n{"prediction": 3}\n'
    )
    gold = write(tmp_path / "gold.jsonl", '{"label": "退款"}\n{"label": "退款"}\n{"label": 3}\n')
    assert main(["eval", "classify", "--pred", str(pred), "--gold", str(gold)]) == 0
    out = capsys.readouterr().out
    assert "accuracy  0.6667" in out and "macro avg" in out and "Confusion matrix" in out
    # A custom field on a plain .txt name switches to JSON Lines too.
    other = write(tmp_path / "other.txt", '{"y": "退款"}\n{"y": "咨询"}\n{"y": "3"}\n')
    code, d = run_json(
        capsys, ["eval", "classify", "--pred", str(other), "--pred-field", "y", "--gold", str(gold)]
    )
    assert code == 0 and d["accuracy"] == pytest.approx(2 / 3)


def test_generation_json_report_and_empty_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = write(tmp_path / "pred.txt", "今天天气很好，我们去公园散步吧。\n\nThe cat sat on the mat.\n")
    ref = write(
        tmp_path / "ref.txt", "今天天气不错，我们一起去公园散步。\n参考答案\nThe cat is sitting on the mat.\n"
    )
    argv = ["eval", "generation", "--pred", str(pred), "--ref", str(ref), "--report", str(tmp_path / "g")]
    code, d = run_json(capsys, [*argv, "--samples"])
    assert code == 0
    assert d["n"] == 3 and d["n_empty_pred"] == 1 and d["n_empty_ref"] == 0
    for key in ("rouge-1", "rouge-2", "rouge-l", "bleu4_jieba", "bleu4_char_sacrebleu"):
        assert isinstance(d[key], float) and 0 < d[key] < 100, key
    samples = d["samples"]
    assert isinstance(samples, list) and samples[1] == {
        "rouge-1": 0.0,
        "rouge-2": 0.0,
        "rouge-l": 0.0,
        "bleu4_jieba": 0.0,
    }
    check_report_dir(tmp_path / "g", ["generation_scores.png"])
    assert "BLEU-4 (characters)" in (tmp_path / "g" / "report.md").read_text(encoding="utf-8")
    # Without --samples the JSON is the summary only; the text form names both BLEU conventions.
    _, summary = run_json(capsys, argv[:6])
    assert "samples" not in summary and summary["rouge-1"] == d["rouge-1"]
    assert main(argv[:6]) == 0
    out = capsys.readouterr().out
    assert "BLEU-4 (jieba words)" in out and "BLEU-4 (characters)" in out


def test_retrieval_json_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # q1: relevant d2 at rank 2 of 4, d4 at rank 4, d9 missing -> recall@1 0, @5 2/3; RR 1/2.
    # q2: integer ids, relevant 7 at rank 1 -> recall 1 everywhere; RR 1.  q3: no relevant ids: skipped.
    run = write(
        tmp_path / "run.jsonl",
        '{"retrieved": ["d1", "d2", "d3", "d4"], "relevant": ["d2", "d4", "d9"]}\n'
        '{"retrieved": [7, 8], "relevant": [7]}\n'
        '{"retrieved": ["x"], "relevant": []}\n',
    )
    code, d = run_json(
        capsys, ["eval", "retrieval", "--run", str(run), "--k", "5,1", "--report", str(tmp_path / "q")]
    )
    assert code == 0
    assert d["ks"] == [1, 5] and d["n"] == 2 and d["n_skipped"] == 1
    assert d["recall_at_k"] == {"1": 0.5, "5": pytest.approx(5 / 6)}
    assert d["hit_at_k"] == {"1": 0.5, "5": 1.0}
    assert d["mrr"] == 0.75
    check_report_dir(tmp_path / "q", ["recall_at_k.png"])
    assert main(["eval", "retrieval", "--run", str(run)]) == 0
    assert "recall@k" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["0", "a,b", "", "1,-5"])
def test_retrieval_bad_k(tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    run = write(tmp_path / "run.jsonl", '{"retrieved": ["a"], "relevant": ["a"]}\n')
    code, d = run_json(capsys, ["eval", "retrieval", "--run", str(run), f"--k={bad}"])
    assert code == 1
    error = d["error"]
    assert isinstance(error, dict) and "--k must be" in error["message"]


# ---- bad input ---------------------------------------------------------------------------------------------


def error_of(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code, d = run_json(capsys, argv)
    assert code == 1
    error = d["error"]
    assert isinstance(error, dict) and error["type"] == "invalid_request_error"
    message = error["message"]
    assert isinstance(message, str)
    return message


def test_mismatched_line_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = write(tmp_path / "pred.txt", "a\nb\nc\n")
    gold = write(tmp_path / "gold.txt", "a\nb\n")
    message = error_of(capsys, ["eval", "classify", "--pred", str(pred), "--gold", str(gold)])
    assert f"{pred} has 3 lines but {gold} has 2" in message
    message = error_of(capsys, ["eval", "generation", "--pred", str(pred), "--ref", str(gold)])
    assert f"{pred} has 3 lines but {gold} has 2" in message
    assert not (tmp_path / "r").exists()


def test_missing_and_empty_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = write(tmp_path / "gold.txt", "a\n")
    missing = tmp_path / "nope.txt"
    message = error_of(capsys, ["eval", "classify", "--pred", str(missing), "--gold", str(gold)])
    assert message == f"predictions file not found: {missing}"
    empty = write(tmp_path / "empty.txt", "")
    message = error_of(capsys, ["eval", "generation", "--pred", str(gold), "--ref", str(empty)])
    assert message == f"references file {empty} is empty: expected one item per line"
    message = error_of(capsys, ["eval", "retrieval", "--run", str(empty)])
    assert str(empty) in message and "empty" in message
    message = error_of(capsys, ["eval", "classify", "--pred", str(tmp_path), "--gold", str(gold)])
    assert "not a file" in message
    # Plain-text form of the error: one line on stderr.
    assert main(["eval", "classify", "--pred", str(missing), "--gold", str(gold)]) == 1
    assert capsys.readouterr().err == f"glmkit: error: predictions file not found: {missing}\n"


def test_bad_lines_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = write(tmp_path / "gold.jsonl", '{"label": "a"}\n{"label": "b"}\n')
    cases = {
        '{"prediction": "a"}\n{oops\n': ":2: not valid JSON",
        '{"prediction": "a"}\n\n': ":2: blank line",
        '{"prediction": "a"}\n["b"]\n': ":2: expected a JSON object, got list",
        '{"prediction": "a"}\n{"text": "b"}\n': ":2: no 'prediction' field (fields: text)",
        '{"prediction": "a"}\n{"prediction": null}\n': ":2: field 'prediction' must be a string, not null",
    }
    for i, (text, expected) in enumerate(cases.items()):
        pred = write(tmp_path / f"pred{i}.jsonl", text)
        message = error_of(capsys, ["eval", "classify", "--pred", str(pred), "--gold", str(gold)])
        assert message == f"{pred}{expected}" or message.startswith(f"{pred}{expected}"), message
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("a\nb\xe9\n".encode("latin-1"))
    message = error_of(capsys, ["eval", "generation", "--pred", str(latin1), "--ref", str(gold)])
    assert message.startswith(f"{latin1}:2: not UTF-8")
    blank_gold = write(tmp_path / "blank_gold.txt", "a\n \n")
    message = error_of(capsys, ["eval", "classify", "--pred", str(latin1), "--gold", str(blank_gold)])
    assert "not UTF-8" in message
    ok = write(tmp_path / "ok.txt", "a\nb\n")
    message = error_of(capsys, ["eval", "classify", "--pred", str(ok), "--gold", str(blank_gold)])
    assert message == f"{blank_gold}:2: empty gold label"
    run = write(tmp_path / "run.jsonl", '{"retrieved": ["a"], "relevant": "a"}\n')
    message = error_of(capsys, ["eval", "retrieval", "--run", str(run)])
    assert message == f"{run}:1: 'relevant' must be a list of string or integer ids"
    run = write(tmp_path / "run2.jsonl", '{"retrieved": ["a"], "relevant": []}\n')
    assert "none with a relevant id" in error_of(capsys, ["eval", "retrieval", "--run", str(run)])


def test_read_items_plain_text_details(tmp_path: Path) -> None:
    # CRLF line ends and a BOM are tolerated; empty lines are items; a last line without "\n" counts.
    path = tmp_path / "p.txt"
    path.write_bytes("\ufeffa\r\n\r\nc".encode())
    assert E.read_items(path) == ["a", "", "c"]
    path.write_bytes(b"\n")
    assert E.read_items(path) == [""]
    with pytest.raises(InvalidRequestError, match="is empty"):
        path.write_bytes(b"")
        E.read_items(path, role="gold")


def test_report_folder_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = write(tmp_path / "pred.txt", "a\n")
    blocker = write(tmp_path / "blocker", "")
    message = error_of(
        capsys, ["eval", "classify", "--pred", str(pred), "--gold", str(pred), "--report", str(blocker)]
    )
    assert message == f"report folder {blocker} exists and is not a folder"


def test_report_from_memory_with_chinese_labels(tmp_path: Path) -> None:
    from glmkit.pipeline.metrics import classification_report

    gold = ["正面", "负面", "中性", "正面", "a|b"]
    pred = ["正面", "中性", "中性", "", "a|b"]
    report = classification_report(gold, pred)
    files = E.write_report(report, tmp_path / "mem", sources={"pred": "内存"})
    check_report_dir(tmp_path / "mem", ["f1_per_class.png", "confusion_matrix.png"])
    md = files.markdown.read_text(encoding="utf-8")
    assert "a\\|b" in md and E.EMPTY_LABEL in md  # table-safe label, visible empty label
    page = files.html.read_text(encoding="utf-8")
    assert "内存" in page and "a|b" in page
