"""Batch summarize and generate: one result per input, bad items reported, resume, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

from fakes import ScriptedEngine
from glmkit.apps.batch import generate_batch, inputs, read_document, summarize_batch
from glmkit.apps.generate import Generator
from glmkit.apps.summarize import extractive
from glmkit.cli import main
from glmkit.runtime.chat import EngineChatModel
from glmkit.runtime.formats.chatglm3 import ChatGLM3Format

TEXT = "长城是中国古代的军事防御工程。它东起山海关，西至嘉峪关。今天的长城是世界文化遗产。"


def folder(tmp: Path) -> Path:
    d = tmp / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text(TEXT, "utf-8")
    (d / "sub" / "b.md").write_text("# 运河\n\n" + TEXT.replace("长城", "运河"), "utf-8")
    (d / "empty.txt").write_bytes(b"")
    (d / "binary.txt").write_bytes(bytes(range(256)) * 16)
    (d / "notes.xyz").write_text("ignored: unsupported types are not picked up from folders", "utf-8")
    return d


def test_summarize_batch_reports_bad_files_and_resumes(tmp_path: Path) -> None:
    docs, out = folder(tmp_path), tmp_path / "out"
    calls: list[str] = []

    def run(text: str) -> dict[str, object]:
        calls.append(text)
        return {"summary": extractive(text, 1)}

    r = summarize_batch([docs], out, run, options={"n": 1})
    assert sorted(r.done) == sorted([str(docs / "a.txt"), str(docs / "sub" / "b.md")])
    failed = {Path(f["source"]).name: f["error"] for f in r.failed}
    assert set(failed) == {"empty.txt", "binary.txt"}
    assert "empty" in failed["empty.txt"] and "binary" in failed["binary.txt"]
    a = json.loads((out / "docs" / "a.txt.summary.json").read_text("utf-8"))
    assert a["summary"] == extractive(TEXT, 1) and len(a["sha256"]) == 64 and a["options"] == {"n": 1}
    assert (out / "docs" / "sub" / "b.md.summary.json").exists()
    assert json.loads((out / "report.json").read_text("utf-8"))["done"] == 2

    calls.clear()
    r = summarize_batch([docs], out, run, options={"n": 1})  # unchanged: nothing redone
    assert calls == [] and len(r.skipped) == 2 and len(r.failed) == 2
    (docs / "a.txt").write_text(TEXT + "明朝对长城进行了重修。", "utf-8")
    r = summarize_batch([docs], out, run, options={"n": 1})  # changed content is redone
    assert r.done == [str(docs / "a.txt")] and len(calls) == 1
    r = summarize_batch([docs], out, run, options={"n": 2})  # changed options: all redone
    assert len(r.done) == 2
    assert not list(out.rglob("*.tmp"))


def test_inputs_keep_layout_and_unique_names(tmp_path: Path) -> None:
    d = folder(tmp_path)
    (tmp_path / "a.txt").write_text(TEXT, "utf-8")
    names = [n for _, n in inputs([d, tmp_path / "a.txt", d / "a.txt"])]
    assert names == ["docs/a.txt", "docs/binary.txt", "docs/empty.txt", "docs/sub/b.md", "a.txt", "a.txt-2"]
    assert "长城" in read_document(d / "a.txt")


POEM = "\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"


def test_generate_batch_continues_past_bad_rows_and_resumes(tmp_path: Path) -> None:
    engine = ScriptedEngine([POEM], n_ctx=4096)
    gen = Generator(EngineChatModel(engine, ChatGLM3Format(), name="fake"))

    def one(req: dict[str, object]) -> dict[str, object]:
        req = dict(req)
        g = gen.generate(str(req.pop("kind", "poem")), str(req.pop("topic", "")), **req)  # type: ignore[arg-type]
        return {"text": g.text, "ok": g.ok}

    src = tmp_path / "req.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps({"kind": "poem", "topic": "思乡", "keywords": "明月"}, ensure_ascii=False),
                "{not json",
                json.dumps({"kind": "poem", "topic": "春", "colour": "red"}),
                json.dumps({"kind": "poem", "topic": "春", "keywords": [f"词{i}" for i in range(40)]}),
                json.dumps({"kind": "poem", "topic": "春", "max_chars": "many"}),
                json.dumps({"kind": "poem", "topic": "秋", "form": "七言绝句"}, ensure_ascii=False),
            ]
        ),
        "utf-8",
    )
    out = tmp_path / "out.jsonl"
    r = generate_batch(src, out, one)
    errors = {f["line"]: f["error"] for f in r.failed}
    assert r.done == ["line 1", "line 6"] and set(errors) == {2, 3, 4, 5}
    assert "not JSON" in errors[2] and "colour" in errors[3] and "cannot fit" in errors[4]
    assert "whole number" in errors[5]
    lines = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
    assert [x["line"] for x in lines] == [1, 2, 3, 4, 5, 6] and lines[0]["ok"] is True
    assert lines[5]["ok"] is False  # a 五言 draft for a 七言 request: reported, not hidden
    n = len(engine.prompts)
    r = generate_batch(src, out, one)
    assert r.skipped == ["line 1", "line 6"] and len(engine.prompts) == n  # done rows are not redone


def test_cli_summarize_and_generate_templates(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GLMKIT_HOME", str(tmp_path / "home"))
    d = folder(tmp_path)
    assert main(["summarize", "--extractive", "--sentences", "1", str(d / "a.txt"), str(d / "empty.txt"), "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows[0]["summary"] == extractive(TEXT, 1) and "empty" in rows[1]["error"]
    assert main(["summarize", "--extractive", str(d), "--out", str(tmp_path / "o"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["done"] == 2 and len(report["failed"]) == 2
    (tmp_path / "home" / "templates").mkdir(parents=True)
    (tmp_path / "home" / "templates" / "slogan.yaml").write_text("prompt: 口号：{topic}\n", "utf-8")
    assert main(["generate", "templates", "--json"]) == 0
    names = {t["name"] for t in json.loads(capsys.readouterr().out)}
    assert {"poem", "ad", "product", "slogan"} <= names
