"""PII detectors: checksums and dates decide, ordinary numbers stay, overlaps resolve, counts add up."""

from __future__ import annotations

import pytest

from glmkit.data.mask import (
    DEFAULT_PLACEHOLDERS,
    Masker,
    Span,
    find,
    id_check_char,
    is_bank_card,
    is_resident_id,
    luhn_valid,
    mask,
    resolve_overlaps,
)
from glmkit.errors import InvalidRequestError


# ---- independent reference implementations (written from the standards, not from the module) ----------
def gb11643_check(first17: str) -> str:
    """GB 11643-1999: weights 2^(18-i) mod 11, check = (12 - sum mod 11) mod 11, 10 written as X."""
    total = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(first17))
    v = (12 - total % 11) % 11
    return "X" if v == 10 else str(v)


def luhn_complete(prefix: str) -> str:
    """Append the Luhn check digit to ``prefix``."""
    for d in "0123456789":
        digits = [int(c) for c in prefix + d]
        s = 0
        for i, x in enumerate(reversed(digits)):
            s += (x * 2 - 9 if x * 2 > 9 else x * 2) if i % 2 else x
        if s % 10 == 0:
            return prefix + d
    raise AssertionError("unreachable")


def types(text: str) -> list[str]:
    return [s.type for s in find(text)]


# ---- resident ID numbers ----------------------------------------------------------------------------------
def test_published_sample_ids_are_valid() -> None:
    # the two worked examples of GB 11643-1999 itself
    for sample in ("11010519491231002X", "440524188001010014"):
        assert is_resident_id(sample)
        assert gb11643_check(sample[:17]) == sample[17]
        assert mask(f"身份证号：{sample}。")[0] == "身份证号：[身份证号]。"


def test_computed_id_is_masked_and_a_wrong_check_character_is_not() -> None:
    first17 = "33010619900307123"  # Hangzhou Xihu district, born 1990-03-07
    good = first17 + gb11643_check(first17)
    assert id_check_char(first17) == gb11643_check(first17)
    assert types(f"证件号{good}") == ["id_card"]
    for wrong in "0123456789X":
        if wrong != good[-1]:
            assert find(f"证件号{first17}{wrong}") == []
    assert types(f"证件号 {good[:6]} {good[6:14]} {good[14:]}") == ["id_card"]  # 6-8-4 grouping
    if good.endswith("X"):
        assert types(f"证件号{good[:-1]}x") == ["id_card"]


def test_lowercase_x_is_accepted() -> None:
    assert types("号码11010519491231002x") == ["id_card"]


@pytest.mark.parametrize(
    "first17",
    [
        "11010519491331002",  # month 13
        "11010520230230002",  # 30 February
        "11010529990101002",  # born in the future
        "11010518000101002",  # before 1850
        "00010519491231002",  # no province 00
        "20010519491231002",  # no province 20
    ],
)
def test_ids_with_a_correct_checksum_but_an_impossible_date_or_region_are_not_masked(first17: str) -> None:
    candidate = first17 + gb11643_check(first17)
    assert not is_resident_id(candidate)
    assert find(candidate) == []


def test_an_id_inside_a_longer_number_is_not_an_id() -> None:
    assert find("1" + "11010519491231002X") == []
    assert find("11010519491231002X" + "7") == []


# ---- bank cards ---------------------------------------------------------------------------------------
def test_luhn_reference_numbers() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("5500000000000004") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("79927398710")


def test_luhn_valid_cards_are_masked_in_any_grouping() -> None:
    unionpay = luhn_complete("621226000012345678")  # 19 digits
    visa = "4111111111111111"
    assert is_bank_card(unionpay) and is_bank_card(visa)
    assert mask(f"卡号{unionpay}")[0] == "卡号[银行卡号]"
    grouped = " ".join(visa[i : i + 4] for i in range(0, 16, 4))
    dashed = "-".join(unionpay[i : i + 4] for i in range(0, 19, 4))
    assert mask(f"请转账到 {grouped} 谢谢")[0] == "请转账到 [银行卡号] 谢谢"
    assert mask(f"卡号：{dashed}")[0] == "卡号：[银行卡号]"


def test_luhn_invalid_cards_and_luhn_valid_non_cards_are_kept() -> None:
    bad = "6212260000123456780"
    if luhn_valid(bad):
        bad = bad[:-1] + str((int(bad[-1]) + 1) % 10)
    assert not luhn_valid(bad) and find(f"卡号{bad}") == []
    order = luhn_complete("20231001123456789")  # an order number that happens to pass Luhn
    assert luhn_valid(order) and len(order) == 18
    assert find(f"订单号{order}") == []


# ---- phones -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "phone",
    [
        "13800138000",
        "+8613800138000",
        "+86 138 0013 8000",
        "+86-138-0013-8000",
        "(+86)13800138000",
        "（+86）13800138000",
        "0086 13800138000",
        "86 13800138000",
        "138-0013-8000",
        "199 1234 5678",
        "１３８００１３８０００",  # full-width digits
    ],
)
def test_mobile_numbers_with_prefixes_and_separators(phone: str) -> None:
    assert mask(f"联系我：{phone}。")[0] == "联系我：[手机号]。"


@pytest.mark.parametrize(
    "text", ["12345678901", "138001380001", "23800138000", "编号 1380013800", "113800138000"]
)
def test_numbers_that_are_not_mobiles(text: str) -> None:
    assert "mobile" not in types(text)


@pytest.mark.parametrize(
    "phone",
    [
        "010-62345678",
        "0571-88888888",
        "(021) 62345678",
        "（0755）86013388",
        "020 8888 6666",
        "010-62345678-123",
    ],
)
def test_landlines(phone: str) -> None:
    assert mask(f"座机 {phone} 转人工")[0] == "座机 [电话] 转人工"


def test_email() -> None:
    assert mask("写信到 zhang.san+ai@mail.example.com.cn。")[0] == "写信到 [邮箱]。"
    assert find("a@b") == [] and find("@example.com") == []


def test_no_false_positives_on_dates_prices_times_and_order_numbers() -> None:
    text = (
        "2023年10月1日（2023-10-01，20231001）10:30-12:00 下单，订单号 202310011234567890，"
        "运单号 SF1234567890123，金额 ¥1,380.00（13800 元），版本 v1.2.3，IP 192.168.1.1，"
        "第27号选手，房间 1208，邮编 310012，工号 010123，比分 3-2，编号 0571-8"
    )
    assert find(text) == []
    assert mask(text) == (text, {})


# ---- addresses ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("北京市海淀区中关村大街27号", "[地址]"),
        ("家住浙江省杭州市西湖区文三路90号3单元501室，邮编310012", "家住[地址]，邮编310012"),
        ("寄到上海市徐汇区漕溪北路88号。", "寄到[地址]。"),
        ("地址：北京海淀中关村大街27号", "地址：[地址]"),
        ("公司在广东省深圳市南山区科苑路15号", "公司在[地址]"),
    ],
)
def test_addresses(text: str, masked: str) -> None:
    assert mask(text)[0] == masked


@pytest.mark.parametrize(
    "text", ["中关村大街27号", "他在北京路5号", "北京很大", "第27号选手在杭州市", "我住在杭州市"]
)
def test_no_address_without_a_place_and_a_numbered_road(text: str) -> None:
    assert "address" not in types(text)


# ---- combining ----------------------------------------------------------------------------------------
def test_mask_counts_each_type_and_spans_point_into_the_text() -> None:
    text = (
        "张三，身份证11010519491231002X，手机+86 138 0013 8000，座机010-62345678，"
        "邮箱zs@example.com，卡号4111 1111 1111 1111，住北京市海淀区中关村大街27号，备用手机13912345678。"
    )
    masked, counts = mask(text)
    assert counts == {"id_card": 1, "mobile": 2, "landline": 1, "email": 1, "bank_card": 1, "address": 1}
    assert masked == (
        "张三，身份证[身份证号]，手机[手机号]，座机[电话]，邮箱[邮箱]，卡号[银行卡号]，住[地址]，备用手机[手机号]。"
    )
    for s in find(text):
        assert text[s.start : s.end] == s.value


def test_overlaps_longest_then_most_specific_wins() -> None:
    assert types("13800138000@163.com") == ["email"]  # the phone is part of a longer e-mail address
    spans = [Span("mobile", 0, 11, "x"), Span("bank_card", 0, 11, "x"), Span("email", 5, 30, "y")]
    assert resolve_overlaps(spans) == [Span("email", 5, 30, "y")]
    assert resolve_overlaps(spans[:2]) == [Span("bank_card", 0, 11, "x")]
    apart = [Span("mobile", 20, 31, "b"), Span("email", 0, 10, "a")]
    assert resolve_overlaps(apart) == sorted(apart, key=lambda s: s.start)


def test_masker_types_and_placeholders_are_configurable() -> None:
    m = Masker(types=["mobile"], placeholders={"mobile": "<PHONE>"})
    masked, counts = m.mask("电话13800138000 邮箱a@example.com")
    assert masked == "电话<PHONE> 邮箱a@example.com" and counts == {"mobile": 1}
    assert DEFAULT_PLACEHOLDERS["mobile"] == "[手机号]"  # the default is not changed by an instance
    with pytest.raises(InvalidRequestError, match="unknown PII type"):
        Masker(types=["passport"])


def test_extra_detector_plugs_in() -> None:
    def find_qq(text: str) -> list[Span]:
        i = text.find("QQ12345")
        return [] if i < 0 else [Span("qq", i, i + 7, "QQ12345")]

    masked, counts = Masker(detectors={"qq": find_qq}).mask("加QQ12345或13800138000")
    assert masked == "加[qq]或[手机号]" and counts == {"qq": 1, "mobile": 1}
