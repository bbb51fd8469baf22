"""A one-line progress bar on stderr, silent when stderr is not a terminal (scripts and ``--json``)."""

from __future__ import annotations

import sys
import time

_started: dict[str, float] = {}


def eta(done: int, total: int, since: float, now: float | None = None) -> str:
    """The time left at the rate so far, as "ETA 3m05s" (empty before the first step is done)."""
    if done <= 0 or done >= total:
        return ""
    left = (time.monotonic() if now is None else now) - since
    left = left / done * (total - done)
    m, s = divmod(int(left + 0.5), 60)
    return f"ETA {m}m{s:02d}s" if m else f"ETA {s}s"


def bar(done: int, total: int, current: str) -> None:
    if not sys.stderr.isatty() or total == 0:
        return
    if done == 0 or "t" not in _started:
        _started["t"] = time.monotonic()
    width = 24
    filled = int(width * done / total)
    name = current.rsplit("/", 1)[-1][:40]
    left = eta(done, total, _started["t"])
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {left:>11} {name:<40}")
    if done == total:
        sys.stderr.write("\n")
        _started.pop("t", None)
    sys.stderr.flush()
