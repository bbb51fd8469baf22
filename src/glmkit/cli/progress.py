"""A one-line progress bar on stderr, silent when stderr is not a terminal (scripts and ``--json``)."""

from __future__ import annotations

import sys


def bar(done: int, total: int, current: str) -> None:
    if not sys.stderr.isatty() or total == 0:
        return
    width = 24
    filled = int(width * done / total)
    name = current.rsplit("/", 1)[-1][:40]
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name:<40}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
