"""The metric functions of ``glmkit.pipeline.metrics``: hand-computed cases, and agreement with the packages
whose conventions they follow (scikit-learn, rouge-chinese, nltk, sacrebleu) on the same inputs."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import warnings

import pytest

from glmkit.errors import InvalidRequestError
from glmkit.pipeline import metrics as M

# ---- classification: by hand -------------------------------------------------------------------------------

GOLD = ["a", "a", "b", "c", "c", "c"]
PRED = ["a", "b", "b", "c", "c", "a"]
# By hand (labels a, b, c):
#   true positives a=1 (item 0), b=1 (item 2), c=2 (items 3, 4)      -> accuracy 4/6
#   predicted      a=2 (0, 5),   b=2 (1, 2),   c=2 (3, 4)
#   gold           a=2,          b=1,          c=3
#   precision      a=1/2, b=1/2, c=1      recall a=1/2, b=1, c=2/3
#   F1 = 2tp/(pred+gold):  a=2/4, b=2/3, c=4/5
#   macro:    P=(1/2+1/2+1)/3=2/3   R=(1/2+1+2/3)/3=13/18   F=(1/2+2/3+4/5)/3=59/90
#   micro:    P=R=F=4/6 (pooled tp 4 over 6 predictions and 6 gold items)
#   weighted (supports 2, 1, 3 of 6): P=(2·1/2+1·1/2+3·1)/6=3/4   R=(1+1+2)/6=2/3
#             F=(2·1/2+1·2/3+3·4/5)/6=61/90
#   confusion (rows gold a, b, c; columns predicted a, b, c): a=[1,1,0] b=[0,1,0] c=[1,0,2]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def test_classification_by_hand() -> None:
    assert close(M.accuracy(GOLD, PRED), 4 / 6)
    per = M.per_class_prf(GOLD, PRED)
    assert list(per) == ["a", "b", "c"]
    expected = {"a": (1 / 2, 1 / 2, 2 / 4, 2), "b": (1 / 2, 1, 2 / 3, 1), "c": (1, 2 / 3, 4 / 5, 3)}
    for label, (p, r, f, s) in expected.items():
        got = per[label]
        assert close(got.precision, p) and close(got.recall, r) and close(got.f1, f) and got.support == s
    macro = M.precision_recall_f1(GOLD, PRED, "macro")
    assert close(macro.precision, 2 / 3) and close(macro.recall, 13 / 18) and close(macro.f1, 59 / 90)
    micro = M.precision_recall_f1(GOLD, PRED, "micro")
    assert close(micro.precision, 4 / 6) and close(micro.recall, 4 / 6) and close(micro.f1, 4 / 6)
    weighted = M.precision_recall_f1(GOLD, PRED, "weighted")
    assert close(weighted.precision, 3 / 4) and close(weighted.recall, 2 / 3) and close(weighted.f1, 61 / 90)
    assert macro.support == micro.support == weighted.support == 6
    cm = M.confusion_matrix(GOLD, PRED)
    assert cm.labels == ["a", "b", "c"]
    assert cm.matrix == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_zero_division_is_zero() -> None:
    # "y" is never predicted: precision 0 (0/0), recall 0/1 = 0, F1 0.
    per = M.per_class_prf(["x", "y"], ["x", "x"])
    assert (per["y"].precision, per["y"].recall, per["y"].f1, per["y"].support) == (0.0, 0.0, 0.0, 1)
    assert close(per["x"].precision, 1 / 2) and per["x"].recall == 1.0 and close(per["x"].f1, 2 / 3)
    # "z" is predicted but never gold: precision 0/1 = 0, recall 0 (0/0), support 0.
    per = M.per_class_prf(["x", "x"], ["x", "z"])
    assert (per["z"].precision, per["z"].recall, per["z"].f1, per["z"].support) == (0.0, 0.0, 0.0, 0)
    # A label in neither: everything 0, and it still counts in the macro mean (1 + 0) / 2.
    per = M.per_class_prf(["x"], ["x"], labels=["x", "w"])
    assert per["w"] == M.PRF(0.0, 0.0, 0.0, 0)
    assert M.precision_recall_f1(["x"], ["x"], "macro", labels=["x", "w"]).f1 == 0.5


def test_explicit_labels_order_and_exclusion() -> None:
    # Only b and c: the a-items are counted nowhere; rows/columns in the given order.
    cm = M.confusion_matrix(GOLD, PRED, labels=["c", "b"])
    assert cm.labels == ["c", "b"]
    assert cm.matrix == [[2, 0], [0, 1]]
    report = M.classification_report(GOLD, PRED, labels=["c", "b", "a"])
    assert report.labels == ["c", "b", "a"] and list(report.per_class) == ["c", "b", "a"]
    with pytest.raises(InvalidRequestError, match="repeat"):
        M.confusion_matrix(GOLD, PRED, labels=["a", "a"])
    with pytest.raises(InvalidRequestError, match="empty"):
        M.per_class_prf(GOLD, PRED, labels=[])


def test_classification_errors() -> None:
    with pytest.raises(InvalidRequestError, match="3 gold items but 2 predictions"):
        M.accuracy(["a", "b", "c"], ["a", "b"])
    with pytest.raises(InvalidRequestError, match="no items"):
        M.accuracy([], [])
    with pytest.raises(InvalidRequestError, match="no items"):
        M.classification_report([], [])
    with pytest.raises(InvalidRequestError, match="unknown average"):
        M.precision_recall_f1(GOLD, PRED, "samples")  # type: ignore[arg-type]


def test_classification_agrees_with_sklearn() -> None:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    rng = random.Random(5)
    pool = ["正面", "负面", "中性", "other", "B", "a", ""]
    for _ in range(150):
        labels = rng.sample(pool, rng.randint(1, len(pool)))
        n = rng.randint(1, 40)
        gold = [rng.choice(labels) for _ in range(n)]
        pred = [rng.choice([*labels, "never-gold"]) for _ in range(n)]
        given = None if rng.random() < 0.6 else rng.sample([*pool, "unseen"], rng.randint(1, 5))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert close(M.accuracy(gold, pred), accuracy_score(gold, pred))
            report = M.classification_report(gold, pred, given)
            p, r, f, s = precision_recall_fscore_support(
                gold, pred, labels=given, average=None, zero_division=0
            )
            assert report.labels == (given if given is not None else sorted(set(gold) | set(pred)))
            for i, label in enumerate(report.labels):
                got = report.per_class[label]
                assert close(got.precision, p[i]) and close(got.recall, r[i]) and close(got.f1, f[i])
                assert got.support == s[i]
            for avg in M.AVERAGES:
                ref = precision_recall_fscore_support(gold, pred, labels=given, average=avg, zero_division=0)
                got = M.precision_recall_f1(gold, pred, avg, given)
                assert close(got.precision, ref[0]), (avg, gold, pred, given)
                assert close(got.recall, ref[1]), (avg, gold, pred, given)
                assert close(got.f1, ref[2]), (avg, gold, pred, given)
            if given is not None and not set(given) & set(gold):
                # scikit-learn refuses a confusion matrix none of whose labels is gold; ours is just all
                # gold rows zero (the one place where we do not follow it).
                with pytest.raises(ValueError):
                    confusion_matrix(gold, pred, labels=given)
                assert all(sum(row) == 0 for row in report.confusion.matrix)
            else:
                assert report.confusion.matrix == confusion_matrix(gold, pred, labels=given).tolist()


# ---- generation: by hand -----------------------------------------------------------------------------------


def test_rouge_by_hand() -> None:
    # hyp a b c a, ref a b d.
    # ROUGE-1 over distinct unigrams: hyp {a,b,c}, ref {a,b,d}, overlap 2 -> P = R = 2/3, F = 2/3.
    # ROUGE-2: hyp {ab, bc, ca}, ref {ab, bd}, overlap {ab} -> P = 1/3, R = 1/2, F = 2·(1/6)/(5/6) = 2/5.
    # ROUGE-L: LCS(a b c a, a b d) = "a b" = 2 -> P = 2/4, R = 2/3, F = 2·(1/3)/(7/6) = 4/7.
    # (rouge-chinese adds 1e-8 to the F denominator, hence the tolerance.)
    r = M.rouge_scores(["a", "b", "c", "a"], ["a", "b", "d"])
    assert math.isclose(r.rouge1, 2 / 3, abs_tol=1e-7)
    assert math.isclose(r.rouge2, 2 / 5, abs_tol=1e-7)
    assert math.isclose(r.rouge_l, 4 / 7, abs_tol=1e-7)
    # Whitespace words vanish: jieba's " " tokens are joined and split away.
    assert M.rouge_tokens(["hello", " ", "world"]) == ["hello", "world"]
    # Empty either side scores 0 (rouge-chinese raises instead).
    assert M.rouge_scores([], ["a"]) == M.RougeScores(0.0, 0.0, 0.0)
    assert M.rouge_scores(["a"], []) == M.RougeScores(0.0, 0.0, 0.0)
    assert M.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4  # the textbook example: BCBA


def test_sentence_bleu_by_hand() -> None:
    # hyp a b c, ref a b c d: clipped precisions 3/3, 2/2, 1/1; no 4-gram in the hypothesis, so 0 matches
    # over max(1, 0) = 1 -> method 3 gives 1/(2^1·1) = 1/2. Geometric mean (1·1·1·1/2)^(1/4);
    # brevity penalty exp(1 - 4/3).
    got = M.sentence_bleu4(["a", "b", "c", "d"], ["a", "b", "c"])
    assert math.isclose(got, math.exp(1 - 4 / 3) * 0.5**0.25, rel_tol=1e-12)
    assert M.sentence_bleu4(list("abcd"), list("abcd")) == 1.0
    assert M.sentence_bleu4(["a"], []) == 0.0  # empty hypothesis
    assert M.sentence_bleu4([], ["a"]) == 0.0  # empty reference: no unigram match
    assert M.sentence_bleu4(["x"], ["y"]) == 0.0


def test_sacrebleu_zh_tokens_by_hand() -> None:
    # CJK characters split; ASCII "!" split off (13a rule 1); "," split off after a letter (rule 2);
    # "3.14" kept whole (period between digits); the full-width comma U+FF0C is in a CJK range.
    assert M.sacrebleu_zh_tokens(" 我爱NLP, 真的!3.14，好 ") == [
        "我",
        "爱",
        "NLP",
        ",",
        "真",
        "的",
        "!",
        "3.14",
        "，",
        "好",
    ]
    # sacrebleu's range quirk: '\u20000' reads as U+2000 + "0", so U+2001..U+2A6D count as CJK — curly
    # quotes and the em dash become tokens of their own, and an Extension B character does not.
    assert M.sacrebleu_zh_tokens("“ok”—x") == ["“", "ok", "”", "—", "x"]
    assert M.sacrebleu_zh_tokens("a\U00020000b") == ["a\U00020000b"]


def test_corpus_bleu_zh_by_hand() -> None:
    # hyp 猫坐在垫子上 (6 characters), ref 猫坐在垫子上了 (7): all n-grams match -> precisions 100;
    # brevity penalty exp(1 - 7/6) -> 100·exp(-1/6).
    got = M.corpus_bleu_zh(["猫坐在垫子上"], ["猫坐在垫子上了"])
    assert math.isclose(got.score, 100 * math.exp(-1 / 6), rel_tol=1e-12)
    assert got.precisions == [100.0] * 4 and (got.sys_len, got.ref_len) == (6, 7)
    # Three identical characters: no 4-gram at all -> sacrebleu floors log(0) -> 0.
    assert M.corpus_bleu_zh(["我爱你"], ["我爱你"]).score == 0.0
    assert M.corpus_bleu_zh([""], [""]).score == 0.0
    assert M.corpus_bleu_zh(["", "今天天气很好"], ["空", ""]).score == 0.0


# ---- generation: agreement with the reference packages ----------------------------------------------------

PAIRS = [
    ("今天天气很好，我们去公园散步吧。", "今天天气不错，我们一起去公园散步。"),
    ("The cat sat on the mat.", "The cat is sitting on the mat."),
    ("使用GPT-4模型，准确率达到95.5%。", "采用 GPT-4 模型后准确率为95.5%！"),
    ("", "参考答案不为空"),
    ("预测不为空", ""),
    ("", ""),
    ("   ", "空白"),
    ("好", "好"),
    ("你好", "你好"),
    ("你好吗？我很好。谢谢！", "你好吗？我很好！谢谢。"),
    ("他说：“你好。”然后走了。", "他说“你好”，然后离开了。"),
    ("这是第一行。\n 这是第二行", "这是第一行。\n\n这是第二行。"),
    ("这是第一行。 \n 这是第二行", "这是第一行。\n \n这是第二行。"),
    ("价格是3,000元，折扣10%。", "价格为3000元, 打九折."),
    ("Hello, world! 你好，世界！", "hello world 你好世界"),
    ("的的的的的的", "的猫在垫子上"),
    ("……好吧……真的吗......是的", "好吧……真的……是的"),
    ("“引号”测试", "‘单引号’测试"),
    ("A B C D E F", "A B C D E F G"),
    ("机器学习是人工智能的一个分支", "机器学习属于人工智能领域的一个重要分支"),
    ("北京是中国的首都。上海是经济中心。", "中国的首都是北京，经济中心是上海。"),
    ("ChatGLM3-6B 支持工具调用", "ChatGLM3-6B支持函数调用和代码解释器"),
    ("１２３ＡＢＣ全角", "123ABC半角"),
    ("Emoji 😀 test ☀", "Emoji test ☀ 😀"),
    ("—— 破折号 ——", "破折号"),
    ("&quot;quoted&quot; <tag>", '"quoted" <tag>'),
    ("a\tb\tc", "a b c"),
    ("重复重复重复重复", "重复"),
    ("x", "y"),
    ("这款连衣裙采用了优质面料，穿着舒适透气，显瘦。", "这款连衣裙面料优质，舒适透气，穿上显瘦又时尚。"),
    ("简约的设计风格，适合日常通勤穿搭。", "设计简约大方，日常通勤都很适合。"),
    ("?!?!", "？！？！"),
    ("。。。", "。"),
    ("Mr. Smith went to Washington.", "Mr. Smith went to Washington ."),
    ("2024-01-01 发布", "2024 - 01 - 01发布"),
    ("数学公式 a+b=c", "a + b = c 是公式"),
    ("结尾有句号。", "结尾有句号。"),
    ("多个  空格   在这里", "多个 空格 在这里"),
    ("一二三四五六七八九十", "一二三四五六七八九十"),
    ("一二三", "一二三四五六七八九十"),
    ("BERT and GPT are transformer models.", "GPT and BERT are both transformers."),
    ("请把文件发送到 test@example.com 谢谢", "请将文件发至test@example.com，谢谢"),
]


def _demo_scores(pred: str, label: str) -> tuple[tuple[float, float, float] | None, float]:
    """ChatGLM3 finetune_demo's per-sample computation (without its rounding): rouge-chinese F on
    space-joined jieba words, and nltk sentence_bleu with method 3. ROUGE is None where rouge-chinese raises."""
    import jieba
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_chinese import Rouge

    pred_tokens = list(jieba.cut(pred.strip()))
    label_tokens = list(jieba.cut(label.strip()))
    try:
        s = Rouge().get_scores(" ".join(pred_tokens), " ".join(label_tokens))[0]
        rouge: tuple[float, float, float] | None = (s["rouge-1"]["f"], s["rouge-2"]["f"], s["rouge-l"]["f"])
    except ValueError:
        rouge = None
    bleu = sentence_bleu([label_tokens], pred_tokens, smoothing_function=SmoothingFunction().method3)
    return rouge, float(bleu)


@pytest.mark.parametrize(("pred", "ref"), PAIRS)
def test_pair_agrees_with_rouge_chinese_and_nltk(pred: str, ref: str) -> None:
    rouge, bleu = _demo_scores(pred, ref)
    hyp_words, ref_words = M.jieba_words(pred), M.jieba_words(ref)
    ours = M.rouge_scores(hyp_words, ref_words)
    if rouge is None:  # rouge-chinese raises on an empty side; we score it 0
        assert not hyp_words or not ref_words
        assert ours == M.RougeScores(0.0, 0.0, 0.0)
    else:
        assert (ours.rouge1, ours.rouge2, ours.rouge_l) == pytest.approx(rouge, rel=0, abs=1e-12)
    assert M.sentence_bleu4(ref_words, hyp_words) == pytest.approx(bleu, rel=0, abs=1e-12)


def test_corpus_agrees_with_sacrebleu() -> None:
    import sacrebleu
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    tokenizer = TokenizerZh()
    hyps, refs = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    for text in hyps + refs:
        assert M.sacrebleu_zh_tokens(text) == tokenizer(text.rstrip()).split(), text
    corpora = [(hyps, refs), (hyps[:10], refs[:10]), (hyps[20:], refs[20:])]
    corpora += [([p], [r]) for p, r in PAIRS]
    for h, r in corpora:
        ref = sacrebleu.corpus_bleu(h, [r], tokenize="zh")
        ours = M.corpus_bleu_zh(h, r)
        assert ours.score == pytest.approx(ref.score, rel=1e-12, abs=1e-12), (h, r)
        assert (ours.sys_len, ours.ref_len) == (ref.sys_len, ref.ref_len)
        assert ours.matches == list(ref.counts) and ours.totals == list(ref.totals)
    assert M.corpus_bleu_zh(hyps, refs).score > 10  # a real, non-degenerate corpus score


def test_zh_character_classes_agree_with_sacrebleu() -> None:
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    is_zh = TokenizerZh._is_chinese_char.__wrapped__  # without its cache
    mine = M.is_sacrebleu_zh_char.__wrapped__
    astral = [0x1F600, 0x20000, 0x20001, 0x2A6D6, 0x2F800, 0x2FA1D, 0x10FFFF]
    for cp in [*range(0xD800), *range(0xE000, 0x10000), *astral]:
        assert mine(chr(cp)) == is_zh(chr(cp)), hex(cp)


def test_generation_report_matches_the_demo() -> None:
    preds, refs = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    report = M.generation_report(preds, refs)
    demo = [_demo_scores(p, r) for p, r in PAIRS]
    rouge = [s if s is not None else (0.0, 0.0, 0.0) for s, _ in demo]
    assert report.n == len(PAIRS)
    assert report.rouge1 == pytest.approx(sum(100 * s[0] for s in rouge) / len(PAIRS), abs=1e-9)
    assert report.rouge2 == pytest.approx(sum(100 * s[1] for s in rouge) / len(PAIRS), abs=1e-9)
    assert report.rouge_l == pytest.approx(sum(100 * s[2] for s in rouge) / len(PAIRS), abs=1e-9)
    # The demo reports BLEU-4 on 0-1; ours is ×100.
    assert report.bleu4_jieba == pytest.approx(100 * sum(b for _, b in demo) / len(PAIRS), abs=1e-9)
    assert report.n_empty_pred == 3 and report.n_empty_ref == 2
    d = report.as_dict(samples=True)
    assert set(d) >= {"rouge-1", "rouge-2", "rouge-l", "bleu4_jieba", "bleu4_char_sacrebleu", "samples"}
    assert len(d["samples"]) == len(PAIRS)


def test_generation_empty_items_never_crash() -> None:
    report = M.generation_report(["", "   ", "x"], ["y", "", ""])
    assert report.rouge1 == report.rouge2 == report.rouge_l == report.bleu4_jieba == 0.0
    assert report.bleu4_char_sacrebleu == 0.0
    perfect = M.generation_report(["今天天气很好", ""], ["今天天气很好", ""])
    assert perfect.samples[0].rouge1 == pytest.approx(100, abs=1e-5) and perfect.samples[1].rouge1 == 0.0
    with pytest.raises(InvalidRequestError, match="no items"):
        M.generation_report([], [])
    with pytest.raises(InvalidRequestError, match="1 references but 2 predictions"):
        M.generation_report(["a", "b"], ["a"])


# ---- retrieval ---------------------------------------------------------------------------------------------


def test_retrieval_by_hand() -> None:
    # q1: retrieved d1 d2 d3 d4, relevant {d2, d4, d9}:
    #   recall@1 = 0/3, @2 = 1/3, @4 = 2/3; hit@1 = 0, hit@2 = 1; reciprocal rank 1/2 (d2 at rank 2).
    # q2: retrieved x, relevant {x}: recall@k = 1, hit@k = 1, reciprocal rank 1.
    # q3: no relevant ids: skipped.  Means over q1, q2: recall@1 = 1/2, @2 = 2/3, @4 = 5/6; MRR = 3/4.
    q1 = M.RetrievalQuery(["d1", "d2", "d3", "d4"], ["d2", "d4", "d9"])
    assert M.recall_at_k(q1.retrieved, q1.relevant, 1) == 0.0
    assert close(M.recall_at_k(q1.retrieved, q1.relevant, 2), 1 / 3)
    assert close(M.recall_at_k(q1.retrieved, q1.relevant, 4), 2 / 3)
    assert M.hit_at_k(q1.retrieved, q1.relevant, 1) == 0.0 and M.hit_at_k(q1.retrieved, q1.relevant, 2) == 1.0
    assert M.reciprocal_rank(q1.retrieved, q1.relevant) == 0.5
    queries = [q1, M.RetrievalQuery(["x"], ["x"]), M.RetrievalQuery(["y"], [])]
    r = M.retrieval_report(queries, ks=[4, 1, 2, 2])
    assert (r.n, r.n_skipped, r.ks) == (2, 1, [1, 2, 4])
    assert close(r.recall[1], 1 / 2) and close(r.recall[2], 2 / 3) and close(r.recall[4], 5 / 6)
    assert r.hit == {1: 0.5, 2: 1.0, 4: 1.0}
    assert close(r.mrr, 3 / 4)
    assert r.as_dict()["recall_at_k"]["4"] == r.recall[4]


def test_retrieval_edge_cases() -> None:
    # A relevant id retrieved twice counts once; nothing relevant retrieved -> 0.
    assert M.recall_at_k(["a", "a", "b"], ["a", "c"], 3) == 0.5
    assert M.reciprocal_rank(["a", "b"], ["z"]) == 0.0
    assert M.recall_at_k([], ["z"], 5) == 0.0
    with pytest.raises(InvalidRequestError, match="no relevant ids"):
        M.recall_at_k(["a"], [], 1)
    with pytest.raises(InvalidRequestError, match="at least 1"):
        M.hit_at_k(["a"], ["a"], 0)
    with pytest.raises(InvalidRequestError, match="none with a relevant id"):
        M.retrieval_report([M.RetrievalQuery(["a"], [])])
    with pytest.raises(InvalidRequestError, match="empty"):
        M.retrieval_report([])


# ---- module hygiene ----------------------------------------------------------------------------------------


def test_no_heavy_imports_at_import_time() -> None:
    code = (
        "import sys, glmkit.pipeline.metrics, glmkit.pipeline.evaluate, glmkit.cli.evaluate;"
        "print(sorted(m for m in ('matplotlib', 'jieba', 'sklearn', 'nltk', 'sacrebleu', 'rouge_chinese')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
