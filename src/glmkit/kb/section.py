"""A section of a document: text with a location a citation can point to (what loaders give, what the
structure finder and the splitter take). Its own module, so both sides import it without a circle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["text", "table", "faq"]


@dataclass(frozen=True)
class Section:
    text: str
    location: str  # where in the source: "第3页", "行 12", "安装 > 下载", "幻灯片 2"
    heading: str = ""  # heading path, carried into every chunk cut from this section
    kind: Kind = "text"
    answer: str = ""  # FAQ entries: text is the question, answer the answer
    lines: tuple[int, int] | None = None  # first and last line in the source, when it has lines
