"""Detect and mask personal information in Chinese (and mixed) text.

The library API, shared by ``glmkit data mask`` and anything that must scrub text before it is logged,
stored or sent elsewhere:

    find(text) -> list[Span]                   # non-overlapping, in text order
    mask(text) -> (masked_text, Counter[type])   # each span replaced by its type's placeholder
    Masker(types=..., placeholders=...)          # the same, configured once and reused

Detectors (each a small function ``text -> Iterator[Span]``; a candidate that fails its check is not a
match, so ordinary numbers, dates, prices and order numbers are left alone), with their placeholders:

- ``id_card`` → ``[身份证号]``: 18 characters — a 6-digit region code with a real province prefix, a birth
  date YYYYMMDD that is a real date between 1850-01-01 and today, a 3-digit sequence, and the
  GB 11643-1999 check character (ISO 7064 MOD 11-2; ``X`` stands for 10). Spaces between the 6/8/4
  groups are allowed. The old 15-digit numbers have no check character and are not detected.
- ``bank_card`` → ``[银行卡号]``: 13–19 digits, contiguous or in groups of 4 separated by one kind of
  space or dash, starting like a payment card (UnionPay 62/60/65/68/9x, Visa 4, Mastercard 51–55/22–27,
  Amex 34/37, JCB 35) and passing the Luhn check.
- ``mobile`` → ``[手机号]``: 1[3-9] and 9 more digits, optionally grouped 3-4-4 by one kind of space or
  dash, optionally after +86 / 0086 / 86 / (+86).
- ``landline`` → ``[电话]``: an area code (010, 02x, 0[3-9]xx) followed by a dash or space, or in
  parentheses, then a 7–8 digit number not starting with 0 or 1, optionally a ``-`` extension.
- ``email`` → ``[邮箱]``: ``local@domain.tld`` with an ASCII local part and a dotted domain.
- ``address`` → ``[地址]`` (conservative): a chain of places — it starts with a province or a place
  ending in 省/市/区/县/自治州/自治区/盟/旗 from jieba's place-name dictionary, and may continue with
  further known places or short names ending in 区/县/镇/乡/街道/新区 — directly followed by a road name
  (1–10 characters, no punctuation) ending in 路/街/大街/大道/道/巷/胡同/弄 and a house number ``N号``
  (optionally building, unit and room). A road and number with no recognisable place right before it
  is not masked.

``Masker`` runs the detectors on a copy of the text with full-width ASCII (``１３８…``, ``＠``) folded to
ASCII, character for character, so full-width numbers and addresses are found at their real offsets.
A match may not touch a further letter or digit on either side (a phone number inside a longer number is
not a phone number). Overlaps are resolved longest first; at equal length the more specific type wins,
in the order of the list above.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import importlib.util
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from glmkit.errors import InvalidRequestError

PII_TYPES: tuple[str, ...] = ("id_card", "bank_card", "email", "mobile", "landline", "address")
"""Every type, most specific first (the tie-break when two candidates have the same length)."""

DEFAULT_PLACEHOLDERS: dict[str, str] = {
    "id_card": "[身份证号]",
    "bank_card": "[银行卡号]",
    "email": "[邮箱]",
    "mobile": "[手机号]",
    "landline": "[电话]",
    "address": "[地址]",
}


@dataclass(frozen=True)
class Span:
    """One detected item: its type, where it is (``text[start:end] == value``) and the matched text."""

    type: str
    start: int
    end: int
    value: str


Detector = Callable[[str], Iterable[Span]]

_NOT_BEFORE = r"(?<![\dA-Za-z])"  # \d is Unicode-aware: full-width digits count as digits
_NOT_AFTER = r"(?![\dA-Za-z])"


def _digits(s: str) -> str:
    return "".join(str(int(c)) for c in s if c.isdecimal())


# ---- resident identity card (GB 11643-1999) -----------------------------------------------------------
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
# province-level region codes (GB/T 2260), plus 71 Taiwan, 81/82/83 HK/Macau/Taiwan residence permits,
# 91 the foreigners' permanent residence ID
_PROVINCE_CODES = "11-15 21-23 31-37 41-46 50-54 61-65 71 81-83 91"
_PROVINCES = frozenset(
    str(code) for part in _PROVINCE_CODES.split() for code in range(int(part[:2]), int(part[-2:]) + 1)
)
_EARLIEST_BIRTH = dt.date(1850, 1, 1)
_ID_RE = re.compile(rf"{_NOT_BEFORE}(\d{{6}}) ?(\d{{8}}) ?(\d{{3}})([\dXx]){_NOT_AFTER}")


def id_check_char(first17: str) -> str:
    """The GB 11643-1999 check character for the first 17 digits (ISO 7064 MOD 11-2)."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("the check character is computed from exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def _birth_date(yyyymmdd: str, today: dt.date | None = None) -> dt.date | None:
    try:
        born = dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return None
    return born if _EARLIEST_BIRTH <= born <= (today or dt.date.today()) else None


def is_resident_id(value: str, *, today: dt.date | None = None) -> bool:
    """True for an 18-character resident ID number with a known province, a plausible birth date and a
    correct check character (spaces ignored, ``x`` accepted for ``X``)."""
    s = value.replace(" ", "").upper()
    if len(s) != 18 or not s[:17].isascii() or not s[:17].isdigit():
        return False
    return s[:2] in _PROVINCES and _birth_date(s[6:14], today) is not None and id_check_char(s[:17]) == s[17]


def find_id_cards(text: str) -> Iterator[Span]:
    for m in _ID_RE.finditer(text):
        candidate = _digits(m.group(1) + m.group(2) + m.group(3)) + (
            _digits(m.group(4)) or m.group(4).upper()
        )
        if is_resident_id(candidate):
            yield Span("id_card", m.start(), m.end(), m.group(0))


# ---- bank cards (Luhn) ---------------------------------------------------------------------------------
_CARD_RE = re.compile(
    rf"{_NOT_BEFORE}(?:\d{{13,19}}|\d{{4}}([ -])\d{{4}}\1\d{{4}}(?:\1\d{{4}})?(?:\1\d{{1,3}})?){_NOT_AFTER}"
)
_CARD_PREFIX_RE = re.compile(r"^(?:62|60|65|68|9\d|4|5[1-5]|2[2-7]|3[47]|35)")


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_bank_card(value: str) -> bool:
    """13–19 digits with a payment-card prefix and a valid Luhn check digit (separators ignored)."""
    digits = _digits(value)
    return 13 <= len(digits) <= 19 and _CARD_PREFIX_RE.match(digits) is not None and luhn_valid(digits)


def find_bank_cards(text: str) -> Iterator[Span]:
    for m in _CARD_RE.finditer(text):
        if is_bank_card(m.group(0)):
            yield Span("bank_card", m.start(), m.end(), m.group(0))


# ---- phones --------------------------------------------------------------------------------------------
_MOBILE_RE = re.compile(
    r"(?<![\dA-Za-z+])(?:(?:\+|00)?86[ -]?|\(\+?86\) ?|（\+?86）)?1[3-9]\d([ -]?)\d{4}\1\d{4}" + _NOT_AFTER
)
_AREA = r"0(?:10|2\d|[3-9]\d{2})"
_LANDLINE_RE = re.compile(
    rf"{_NOT_BEFORE}(?:(?:\+86[ -]?)?{_AREA}[ -]|[(（]{_AREA}[)）] ?)"  # 010- / 0571 / (021)
    rf"[2-9]\d{{2,3}}[ -]?\d{{4}}(?:-\d{{1,5}})?{_NOT_AFTER}"  # 7-8 digits, then an extension
)


def find_mobiles(text: str) -> Iterator[Span]:
    for m in _MOBILE_RE.finditer(text):
        yield Span("mobile", m.start(), m.end(), m.group(0))


def find_landlines(text: str) -> Iterator[Span]:
    for m in _LANDLINE_RE.finditer(text):
        yield Span("landline", m.start(), m.end(), m.group(0))


# ---- e-mail --------------------------------------------------------------------------------------------
_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)


def find_emails(text: str) -> Iterator[Span]:
    for m in _EMAIL_RE.finditer(text):
        yield Span("email", m.start(), m.end(), m.group(0))


# ---- addresses -----------------------------------------------------------------------------------------
_PROVINCE_NAMES = [
    *("北京", "天津", "上海", "重庆"),
    *("河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江", "安徽", "福建", "江西", "山东", "河南"),
    *("湖北", "湖南", "广东", "海南", "四川", "贵州", "云南", "陕西", "甘肃", "青海", "台湾"),
    *("内蒙古", "广西", "西藏", "宁夏", "新疆", "香港", "澳门"),
]
_PROVINCE_FULL = (
    [f"{p}市" for p in ("北京", "天津", "上海", "重庆")]
    + [f"{p}省" for p in _PROVINCE_NAMES[4:27]]
    + ["内蒙古自治区", "广西壮族自治区", "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区"]
    + ["香港特别行政区", "澳门特别行政区"]
)
_UNIT_SUFFIXES = ("省", "市", "区", "县", "自治州", "自治区", "盟", "旗")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
_ROAD_RE = re.compile(
    r"(?:大街|大道|路|街|道|巷|胡同|弄)\d{1,5}(?:[-之]\d{1,5})?号"
    r"(?:\d{1,4}(?:号楼|栋|幢|座))?(?:\d{1,3}单元)?(?:\d{1,5}(?:室|房))?"
)
# after a known place: a district/county/town jieba does not know (徐汇区, 张江镇); never a city (市), which
# would let a chain swallow the words before the real city name
_NEXT_UNIT_RE = re.compile(rf"[{_HAN}]{{1,4}}?(?:自治县|新区|街道|区|县|镇|乡)")
_ROAD_NAME_RE = re.compile(rf"[{_HAN}A-Za-z0-9]{{1,10}}")
_LOOKBACK = 48


@functools.cache
def place_names() -> frozenset[str]:
    """Administrative place names: the provinces, plus jieba's place names (tag ``ns``) that end in an
    administrative suffix (杭州市, 海淀区, 余杭区, 延边朝鲜族自治州 …)."""
    names = set(_PROVINCE_NAMES) | set(_PROVINCE_FULL)
    spec = importlib.util.find_spec("jieba")
    if spec is not None and spec.origin is not None:
        dict_txt = Path(spec.origin).parent / "dict.txt"
        if dict_txt.is_file():
            with dict_txt.open(encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if (
                        len(parts) == 3
                        and parts[2] == "ns"
                        and len(parts[0]) >= 2
                        and parts[0].endswith(_UNIT_SUFFIXES)
                    ):
                        names.add(parts[0])
    return frozenset(names)


def _place_at(text: str, i: int, end: int, names: frozenset[str]) -> int:
    """End of the longest known place name in ``text[i:end]`` starting at ``i``, or -1."""
    for n in range(min(9, end - i), 1, -1):
        if text[i : i + n] in names:
            return i + n
    return -1


def _address_start(text: str, lo: int, road_end: int) -> int | None:
    """The earliest start in ``text[lo:road_end]`` of a place chain that runs straight into a road name."""
    names = place_names()
    for i in range(lo, road_end):
        j = _place_at(text, i, road_end, names)
        if j < 0:
            continue
        while j < road_end:  # further units: known names, or any short name with a unit suffix
            k = _place_at(text, j, road_end, names)
            if k < 0:
                m = _NEXT_UNIT_RE.match(text, j, road_end)
                k = m.end() if m else -1
            if k < 0:
                break
            j = k
        if _ROAD_NAME_RE.fullmatch(text, j, road_end):
            return i
    return None


def find_addresses(text: str) -> Iterator[Span]:
    for m in _ROAD_RE.finditer(text):
        start = _address_start(text, max(0, m.start() - _LOOKBACK), m.start())
        if start is not None:
            yield Span("address", start, m.end(), text[start : m.end()])


# ---- combining detectors -------------------------------------------------------------------------------
_FULL_TO_HALF = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}  # ＡＢＣ１２３＠ → ABC123@

DETECTORS: Mapping[str, Detector] = {
    "id_card": find_id_cards,
    "bank_card": find_bank_cards,
    "email": find_emails,
    "mobile": find_mobiles,
    "landline": find_landlines,
    "address": find_addresses,
}


def resolve_overlaps(spans: Iterable[Span], order: Iterable[str] = PII_TYPES) -> list[Span]:
    """Non-overlapping spans in text order: longest first, then the more specific type, then leftmost."""
    rank = {t: i for i, t in enumerate(order)}
    starts: list[int] = []  # the kept spans, sorted by start (they never overlap, so ends are sorted too)
    taken: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.start - s.end, rank.get(s.type, len(rank)), s.start)):
        i = bisect.bisect_left(starts, s.start)
        if (i > 0 and taken[i - 1].end > s.start) or (i < len(taken) and taken[i].start < s.end):
            continue
        starts.insert(i, s.start)
        taken.insert(i, s)
    return taken


class Masker:
    """Detectors and placeholders configured once: ``find(text)`` and ``mask(text)``.

    ``types`` selects detectors by name (default: all); ``placeholders`` overrides some or all of
    ``DEFAULT_PLACEHOLDERS``; ``detectors`` adds or replaces detector functions by type name."""

    def __init__(
        self,
        types: Iterable[str] | None = None,
        placeholders: Mapping[str, str] | None = None,
        detectors: Mapping[str, Detector] | None = None,
    ) -> None:
        available = {**DETECTORS, **(detectors or {})}
        chosen = list(available) if types is None else list(types)
        unknown = [t for t in chosen if t not in available]
        if unknown:
            raise InvalidRequestError(
                f"unknown PII type(s) {', '.join(unknown)}; known: {', '.join(available)}", param="types"
            )
        self.detectors = {t: available[t] for t in chosen}
        self.placeholders = {**DEFAULT_PLACEHOLDERS, **(placeholders or {})}
        for t in self.detectors:
            self.placeholders.setdefault(t, f"[{t}]")
        self._order = [*PII_TYPES, *(t for t in available if t not in PII_TYPES)]

    def find(self, text: str) -> list[Span]:
        probe = text.translate(_FULL_TO_HALF)  # one character for one: offsets stay valid
        spans = [s for detect in self.detectors.values() for s in detect(probe)]
        if probe != text:
            spans = [Span(s.type, s.start, s.end, text[s.start : s.end]) for s in spans]
        return resolve_overlaps(spans, self._order)

    def mask(self, text: str) -> tuple[str, Counter[str]]:
        counts: Counter[str] = Counter()
        out: list[str] = []
        pos = 0
        for s in self.find(text):
            out.append(text[pos : s.start])
            out.append(self.placeholders[s.type])
            counts[s.type] += 1
            pos = s.end
        out.append(text[pos:])
        return "".join(out), counts


def find(text: str) -> list[Span]:
    """Every PII span in ``text`` with the default detectors (see the module docstring)."""
    return Masker().find(text)


def mask(text: str) -> tuple[str, Counter[str]]:
    """``text`` with each PII span replaced by its typed placeholder, and the count per type."""
    return Masker().mask(text)
