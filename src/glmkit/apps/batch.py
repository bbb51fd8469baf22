"""Batch runs for summarize and generate: one result per input, progress, resume, and bad items
reported without stopping the batch.

- ``summarize_batch``: files and folders in, one ``<name>.summary.json`` per input file in ``out_dir``
  (written atomically). Resuming skips an input whose result exists for the same content (sha256) and the
  same options; failed inputs are retried. ``report.json`` lists what was done, skipped and failed.
- ``generate_batch``: a CSV or JSONL of requests in (one per row: kind, topic, form, keywords, …), one JSON
  line per request out, appended as each finishes so a killed run loses nothing; resuming skips the rows
  that already succeeded; at the end the output is rewritten in input order."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glmkit.errors import GlmkitError, InvalidRequestError

Progress = Callable[[int, int, str], None]


@dataclass
class BatchReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    out: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "done": len(self.done),
            "skipped": len(self.skipped),
            "failed": self.failed,
        }


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def inputs(paths: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(file, output name) for files and folders (recursively); names keep the folder layout and are
    made unique."""
    from glmkit.kb.service import expand

    out: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for p in map(Path, paths):
        files = expand([p])
        for f in files:
            name = (Path(p.name) / f.relative_to(p)).as_posix() if p.is_dir() else f.name
            base, i = name, 2
            while name in seen:
                name = f"{base}-{i}"
                i += 1
            seen.add(name)
            out.append((f, name))
    return out


def read_document(path: Path) -> str:
    """The text of any file the knowledge base reads (FAQ rows become question + answer)."""
    from glmkit.kb.loaders import load

    sections = load(path)
    return "\n".join(s.text if not s.answer else f"{s.text}\n{s.answer}" for s in sections)


def summarize_batch(
    paths: Sequence[str | Path],
    out_dir: Path,
    summarize: Callable[[str], dict[str, Any]],
    *,
    options: dict[str, Any],
    resume: bool = True,
    progress: Progress | None = None,
) -> BatchReport:
    """Run ``summarize(text) -> result dict`` over every input file; see the module docstring."""
    items = inputs(paths)
    if not items:
        raise InvalidRequestError("no input files found (folders are searched for supported types)")
    report = BatchReport(out=str(out_dir))
    opts = json.dumps(options, sort_keys=True, ensure_ascii=False)
    for i, (path, name) in enumerate(items):
        if progress is not None:
            progress(i, len(items), str(path))
        target = out_dir / f"{name}.summary.json"
        try:
            data = path.read_bytes()
        except OSError as e:
            report.failed.append({"source": str(path), "error": f"cannot read ({e.strerror})"})
            continue
        sha = hashlib.sha256(data).hexdigest()
        if resume and target.exists():
            try:
                old = json.loads(target.read_text(encoding="utf-8"))
                if old.get("sha256") == sha and old.get("options") == json.loads(opts) and "summary" in old:
                    report.skipped.append(str(path))
                    continue
            except (OSError, ValueError):
                pass  # a damaged result is redone
        try:
            result = summarize(read_document(path))
        except GlmkitError as e:
            report.failed.append({"source": str(path), "error": e.message})
            continue
        record = {"source": str(path), "sha256": sha, "options": json.loads(opts)} | result
        write_atomic(target, json.dumps(record, ensure_ascii=False, indent=1))
        report.done.append(str(path))
    if progress is not None:
        progress(len(items), len(items), "")
    write_atomic(out_dir / "report.json", json.dumps(report.as_dict(), ensure_ascii=False, indent=1))
    return report


# -- generation requests from a CSV or JSONL file -------------------------------------------------------------
REQUEST_FIELDS = {
    "kind", "topic", "form", "keywords", "style", "audience", "min_chars", "max_chars", "retries", "seed",
}  # fmt: skip
_INTS = ("min_chars", "max_chars", "retries", "seed")


def read_requests(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, request) or (line number, error message) for each row of a CSV or JSONL file."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidRequestError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{path.name}: not UTF-8 text") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "topic" not in reader.fieldnames:
            raise InvalidRequestError(
                f"{path.name}: a CSV of requests needs a header row with a 'topic' column"
            )
        for row in reader:
            yield reader.line_num, _request({k: v for k, v in row.items() if k and v not in (None, "")})
    elif path.suffix.lower() in (".jsonl", ".json"):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield n, f"not JSON ({e.msg})"
                continue
            yield n, _request(obj) if isinstance(obj, dict) else "not a JSON object"
    else:
        raise InvalidRequestError(f"{path.name}: requests come as .csv or .jsonl")


def _request(obj: dict[str, Any]) -> dict[str, Any] | str:
    unknown = sorted(set(obj) - REQUEST_FIELDS)
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(REQUEST_FIELDS))}"
    req = dict(obj)
    if isinstance(req.get("keywords"), str):
        req["keywords"] = [k for k in req["keywords"].replace("，", ",").split(",") if k.strip()]
    kw = req.get("keywords")
    if kw is not None and not (isinstance(kw, list) and all(isinstance(k, str) for k in kw)):
        return "keywords must be a list of words or a comma-separated string"
    for k in ("kind", "topic", "form", "style", "audience"):
        if k in req and not isinstance(req[k], str):
            return f"{k} must be text, not {type(req[k]).__name__}"
    for k in _INTS:
        if k in req and not isinstance(req[k], int):
            try:
                req[k] = int(str(req[k]))
            except ValueError:
                return f"{k} must be a whole number, not {req[k]!r}"
    return req


def generate_batch(
    path: Path,
    out: Path,
    generate: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    resume: bool = True,
    progress: Progress | None = None,
) -> BatchReport:
    requests = list(read_requests(path))
    if not requests:
        raise InvalidRequestError(f"{path.name}: no requests in the file")
    report = BatchReport(out=str(out))
    results: dict[int, dict[str, Any]] = {}
    if resume and out.exists():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                old = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if isinstance(old, dict) and isinstance(old.get("line"), int) and "error" not in old:
                results[old["line"]] = old
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as log:
        for i, (n, req) in enumerate(requests):
            if progress is not None:
                progress(i, len(requests), f"line {n}")
            if n in results:
                report.skipped.append(f"line {n}")
                continue
            if isinstance(req, str):
                rec: dict[str, Any] = {"line": n, "error": req}
            else:
                try:
                    rec = {"line": n, "request": req} | generate(req)
                except GlmkitError as e:
                    rec = {"line": n, "request": req, "error": e.message}
                except TypeError as e:  # a field of the wrong type reached the generator
                    rec = {"line": n, "request": req, "error": str(e)}
            results[n] = rec
            if "error" in rec:
                report.failed.append({"line": n, "error": rec["error"]})
            else:
                report.done.append(f"line {n}")
            log.write(json.dumps(rec, ensure_ascii=False) + "\n")
            log.flush()
    if progress is not None:
        progress(len(requests), len(requests), "")
    write_atomic(out, "".join(json.dumps(results[k], ensure_ascii=False) + "\n" for k in sorted(results)))
    return report
