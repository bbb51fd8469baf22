"""Deduplication: exact after normalising, near by MinHash LSH, with a faithful similarity estimate."""

from __future__ import annotations

import pytest

from glmkit.data.dedupe import Deduper, Drop, MinHasher, char_shingles, lsh_params, normalize
from glmkit.errors import InvalidRequestError

RULES = [
    "会员积分每年一月一日清零，请及时使用。",
    "积分可以在商城兑换礼品或者抵扣运费。",
    "每消费一元获得一个积分，特价商品除外。",
    "退货时已经获得的积分会被全部扣回。",
    "积分不能转让给他人，也不能兑换现金。",
    "金卡会员每月还可以领取一张免运费券。",
    "生日当月消费可以获得双倍积分奖励。",
    "积分到账一般需要七个工作日左右。",
    "如有疑问请联系在线客服，早九点到晚九点。",
    "本规则自二零二四年三月一日起施行。",
    "平台保留在法律允许范围内解释本规则的权利。",
    "积分商城的礼品数量有限，先到先得。",
    "兑换成功的礼品将在五个工作日内发出。",
    "虚拟礼品兑换后立即到账，不支持退换。",
    "会员等级每年根据上一年的消费金额评定。",
    "银卡会员年消费满五千元即可升级为金卡。",
    "金卡会员享受专属客服和优先发货服务。",
    "会员信息变更请在个人中心自行修改。",
    "账号注销后剩余积分将一并作废。",
    "活动期间的积分规则以活动页面说明为准。",
]
DOC = "".join(RULES)
ONE_CHANGED = "".join([*RULES[:7], "若订单被取消，已抵扣的积分会在三天内退回。", *RULES[8:]])
UNRELATED = "今天天气很好，我们一起去西湖边散步，顺便在湖边的小店里喝一杯龙井茶，看看断桥的风景。"


def jaccard(a: str, b: str, n: int = 5) -> float:
    x, y = char_shingles(normalize(a), n), char_shingles(normalize(b), n)
    return len(x & y) / len(x | y)


def test_one_changed_sentence_is_a_near_duplicate_and_unrelated_text_is_kept() -> None:
    # one sentence of twenty changed: true Jaccard ≈ 0.88, well above 0.8 for a 128-value estimate (σ ≈ 0.03)
    assert 0.85 < jaccard(DOC, ONE_CHANGED) < 0.95
    d = Deduper(0.8)
    assert d.check(1, DOC) is None
    assert d.check(2, UNRELATED) is None
    drop = d.check(3, ONE_CHANGED)
    assert drop is not None and (drop.line, drop.duplicate_of, drop.kind) == (3, 1, "near")
    assert drop.similarity == pytest.approx(jaccard(DOC, ONE_CHANGED), abs=0.1)
    assert d.check(4, "完全不同的一句话，讲的是怎么做红烧肉。") is None


def test_exact_duplicates_ignore_case_width_spaces_and_punctuation() -> None:
    d = Deduper(0.8)
    assert d.check(1, "Hello, 世界！ ChatGLM3") is None
    assert d.check(2, "hello 世界 ｃｈａｔｇｌｍ３。") == Drop(2, 1, "exact", 1.0)
    drop = d.check(3, "hello 世界 chatglm4")  # one character differs: near, not exact
    assert drop is not None and drop.kind == "near" and drop.similarity < 1.0


def test_exact_only_mode_keeps_near_duplicates() -> None:
    d = Deduper(0.8, near=False)
    assert d.check(1, DOC) is None and d.check(2, ONE_CHANGED) is None
    assert d.check(3, DOC + " ") == Drop(3, 1, "exact", 1.0)


def test_blank_texts_are_always_kept() -> None:
    d = Deduper(0.8)
    assert d.check(1, "") is None and d.check(2, "  ！") is None and d.check(3, "") is None


def test_the_reported_original_is_the_most_similar_kept_text() -> None:
    d = Deduper(0.7)
    assert d.check(1, DOC) is None
    far = "".join(
        [
            *RULES[:5],
            "第一处改动的句子，和原文完全不同。",
            *RULES[6:11],
            "第二处改动的句子，也和原文不同。",
            *RULES[12:],
        ]
    )
    assert d.check(2, UNRELATED) is None
    drop = d.check(3, far)
    assert drop is not None and drop.duplicate_of == 1


def test_minhash_estimate_tracks_true_jaccard() -> None:
    h = MinHasher(256, seed=7)
    a, b = char_shingles(normalize(DOC), 5), char_shingles(normalize(ONE_CHANGED), 5)
    est = float((h.signature(a) == h.signature(b)).mean())
    assert est == pytest.approx(len(a & b) / len(a | b), abs=0.08)
    assert (h.signature(a) == h.signature(a)).all()


def test_word_shingles() -> None:
    d = Deduper(0.8, shingle="word")
    assert d.ngram == 2
    assert d.check(1, DOC) is None
    drop = d.check(2, ONE_CHANGED)
    assert drop is not None and drop.kind == "near"


def test_lsh_parameters_favour_recall_around_the_threshold() -> None:
    bands, rows = lsh_params(0.8, 128)
    assert bands * rows <= 128
    assert 1 - (1 - 0.85**rows) ** bands > 0.95  # a pair just above the threshold is almost surely compared
    assert 1 - (1 - 0.5**rows) ** bands < 0.05  # a pair far below it almost never is


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": 1.5}, {"num_perm": 4}, {"ngram": 0}])
def test_bad_parameters_are_rejected(kwargs: dict[str, float]) -> None:
    args = {"threshold": 0.8} | kwargs
    threshold = args.pop("threshold")
    with pytest.raises(InvalidRequestError):
        Deduper(threshold, **args)  # type: ignore[arg-type]
