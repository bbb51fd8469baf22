"""Streaming input and output for ``glmkit data``: records line by line, output files that appear whole
or not at all, and a progress line.

- ``read_lines(path)`` yields numbered lines of a UTF-8 file (or stdin for ``-``) one at a time, so a
  multi-GB file is never held in memory; bytes that are not UTF-8 raise ``InvalidRequestError`` naming the
  file and the line.
- ``read_records(path, fields)`` turns each line into a ``Record``: the whole line as plain text, or, with
  ``fields``, the named string fields of a JSON object (the rest of the object is carried along).
- ``open_output(path)`` writes into a hidden temporary file beside the target and renames it over the
  target only when the block ends without an exception; ``-`` is stdout (streamed, not atomic).
- ``Progress`` redraws one line on stderr at most twice a second, only when stderr is a terminal.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from glmkit.errors import InvalidRequestError

STDIO = "-"


def display_name(path: str) -> str:
    """How a path is named in messages: ``<stdin>`` for ``-``."""
    return "<stdin>" if path == STDIO else path


def input_size(path: str) -> int | None:
    """The size in bytes of an input file (for progress), None for stdin or anything unusual."""
    if path == STDIO:
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None


class Progress:
    """``label: 12,345 lines · 3.1 MB / 40.0 MB (7%)`` on stderr, redrawn at most every 0.5 s.

    Silent when stderr is not a terminal (scripts, CI, ``--json``), unless ``enabled`` says otherwise."""

    def __init__(self, label: str, total_bytes: int | None = None, *, enabled: bool | None = None) -> None:
        self.label = label
        self.total = total_bytes
        self.lines = 0
        self.bytes = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0
        self._drawn = False

    def advance(self, nbytes: int) -> None:
        self.lines += 1
        self.bytes += nbytes
        if self.enabled and (now := time.monotonic()) - self._last >= 0.5:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        done = f"{self.bytes / 1e6:.1f} MB"
        if self.total:
            done += f" / {self.total / 1e6:.1f} MB ({100 * self.bytes / self.total:.0f}%)"
        sys.stderr.write(f"\r{self.label}: {self.lines:,} lines · {done}   ")
        sys.stderr.flush()
        self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self._draw()
            sys.stderr.write("\n")
            sys.stderr.flush()


@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    text: str  # without its line ending


def _open_binary(path: str) -> Any:
    try:
        return open(path, "rb")  # closed by the generator that owns it
    except FileNotFoundError:
        raise InvalidRequestError(f"{path}: no such file", param="input") from None
    except IsADirectoryError:
        raise InvalidRequestError(
            f"{path} is a folder; give a file (or - for stdin)", param="input"
        ) from None
    except OSError as e:
        raise InvalidRequestError(f"{path}: cannot read it ({e.strerror})", param="input") from e


def _raw_lines(path: str) -> Iterator[bytes]:
    if path != STDIO:
        with _open_binary(path) as f:
            yield from f
        return
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        yield from buffer
    else:  # a text stream without bytes underneath (tests replace stdin with StringIO)
        for text in sys.stdin:
            yield text.encode("utf-8")


def read_lines(path: str, *, progress: Progress | None = None) -> Iterator[Line]:
    """Each line of ``path`` (``-``: stdin) decoded as UTF-8, one at a time; a BOM on line 1 is dropped."""
    name = display_name(path)
    for n, raw in enumerate(_raw_lines(path), 1):
        if progress is not None:
            progress.advance(len(raw))
        if n == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidRequestError(
                f"{name}:{n}: not UTF-8 (bad byte at column {e.start + 1}); convert the file first, "
                "e.g. iconv -f GB18030 -t UTF-8",
                param="input",
            ) from e
        yield Line(n, text.rstrip("\r\n"))


@dataclass
class Record:
    """One input line: its text(s) to process, and how to write it back with new texts.

    Plain text: ``texts`` is ``[line]``. JSONL with fields: ``texts`` holds the named fields in order and
    ``obj`` the whole object, so every other key is written back unchanged."""

    number: int
    raw: str
    texts: list[str]
    fields: tuple[str, ...] = ()
    obj: dict[str, Any] | None = None

    def render(self, texts: Sequence[str]) -> str:
        """The output line with ``texts`` in place of the processed text(s)."""
        if self.obj is None:
            return texts[0]
        out = dict(self.obj)
        for name, text in zip(self.fields, texts, strict=True):
            out[name] = None if text == "" and self.obj[name] is None else text  # null stays null
        return json.dumps(out, ensure_ascii=False)


def parse_record(line: Line, fields: Sequence[str], name: str) -> Record:
    """A plain-text record, or with ``fields`` the JSON object's string fields (an error names the line)."""
    if not fields:
        return Record(line.number, line.text, [line.text])
    where = f"{name}:{line.number}"
    try:
        obj = json.loads(line.text)
    except json.JSONDecodeError as e:
        raise InvalidRequestError(
            f"{where}: not valid JSON ({e.msg} at column {e.colno}); --field needs one JSON object per line",
            param="input",
        ) from e
    if not isinstance(obj, dict):
        raise InvalidRequestError(
            f"{where}: expected a JSON object, got {type(obj).__name__}; --field needs one object per line",
            param="input",
        )
    texts: list[str] = []
    for f in fields:
        if f not in obj:
            raise InvalidRequestError(f"{where}: field {f!r} is missing", param="field")
        value = obj[f]
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise InvalidRequestError(
                f"{where}: field {f!r} must be a string, got {type(value).__name__}", param="field"
            )
        texts.append(value)
    return Record(line.number, line.text, texts, tuple(fields), obj)


def read_records(
    path: str, fields: Sequence[str] = (), *, progress: Progress | None = None
) -> Iterator[Record]:
    """``read_lines`` turned into ``Record`` values (see ``parse_record``)."""
    name = display_name(path)
    for line in read_lines(path, progress=progress):
        yield parse_record(line, fields, name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def open_output(path: str) -> Iterator[TextIO]:
    """A text stream for the output. A file is written under a temporary name in the same folder and
    renamed over ``path`` when the block completes; if the block raises (or the process dies), ``path``
    is untouched and the temporary file is removed (or, after a hard kill, left hidden as ``.NAME.*.part``).
    ``-`` streams to stdout."""
    if path == STDIO:
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    if target.is_dir():
        raise InvalidRequestError(f"{path} is a folder; give a file name for the output", param="output")
    folder = target.parent
    if not folder.is_dir():
        raise InvalidRequestError(f"{path}: the folder {folder} does not exist", param="output")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise InvalidRequestError(f"{path}: cannot write in {folder} ({e.strerror})", param="output") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
