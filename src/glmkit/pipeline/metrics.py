"""Evaluation metrics as pure functions: classification, generation and retrieval.

Every function states the convention it follows, and each convention is that of a reference package that
users already compare against (the tests check agreement on the same inputs):

* classification — scikit-learn's ``accuracy_score``, ``precision_recall_fscore_support`` (with
  ``zero_division=0``: a class that is never predicted has precision 0, one that never occurs has recall 0)
  and ``confusion_matrix`` (rows are gold labels, columns predictions). Scores are fractions in [0, 1].
* generation — ROUGE-1/2/L F-scores as ``rouge-chinese`` computes them on space-joined jieba words, and
  BLEU-4 in two conventions: ``bleu4_jieba`` (nltk's ``sentence_bleu`` with smoothing method 3 on jieba
  words, averaged over samples: ChatGLM3's fine-tuning demo) and ``bleu4_char_sacrebleu`` (sacrebleu's
  corpus BLEU with its ``zh`` tokenizer: each CJK character a token). Scores are on a 0–100 scale.
* retrieval — recall@k, hit@k and MRR over ranked lists of ids; fractions in [0, 1].

Nothing here imports a heavy package at module import time; jieba is loaded on first use.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Literal

from glmkit.errors import InvalidRequestError
from glmkit.kb.text import jieba_module

Average = Literal["macro", "micro", "weighted"]
AVERAGES: tuple[Average, ...] = ("macro", "micro", "weighted")


# ---- classification ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1 (fractions in [0, 1]) with the number of gold items they cover."""

    precision: float
    recall: float
    f1: float
    support: int

    def as_dict(self) -> dict[str, float | int]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support}


@dataclass(frozen=True)
class ConfusionMatrix:
    """``matrix[i][j]`` counts items whose gold label is ``labels[i]`` and prediction ``labels[j]``."""

    labels: list[str]
    matrix: list[list[int]]


@dataclass(frozen=True)
class ClassificationReport:
    kind: ClassVar[str] = "classification"

    n: int
    accuracy: float
    labels: list[str]
    per_class: dict[str, PRF]
    macro: PRF
    micro: PRF
    weighted: PRF
    confusion: ConfusionMatrix

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n": self.n,
            "accuracy": self.accuracy,
            "labels": self.labels,
            "per_class": {label: s.as_dict() for label, s in self.per_class.items()},
            "macro": self.macro.as_dict(),
            "micro": self.micro.as_dict(),
            "weighted": self.weighted.as_dict(),
            "confusion_matrix": {"labels": self.confusion.labels, "matrix": self.confusion.matrix},
            "convention": "scikit-learn, zero_division=0; fractions in [0, 1]; confusion rows = gold",
        }


def _check_lengths(
    gold: Sequence[object], pred: Sequence[object], names: tuple[str, str] = ("gold items", "predictions")
) -> None:
    if len(gold) != len(pred):
        raise InvalidRequestError(f"{len(gold)} {names[0]} but {len(pred)} {names[1]}: they must pair up")


def _div(num: float, den: float) -> float:
    """``num / den``, and 0.0 when ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    return num / den if den else 0.0


def label_set(gold: Iterable[str], pred: Iterable[str]) -> list[str]:
    """The sorted union of gold and predicted labels: scikit-learn's ``unique_labels`` order."""
    return sorted(set(gold) | set(pred))


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Fraction of items whose prediction equals the gold label (``sklearn.metrics.accuracy_score``)."""
    _check_lengths(gold, pred)
    if not gold:
        raise InvalidRequestError("accuracy of no items is undefined: give at least one item")
    return sum(1 for g, p in zip(gold, pred, strict=True) if g == p) / len(gold)


def _counts(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]
) -> tuple[list[int], list[int], list[int]]:
    """Per label: true positives, times predicted, times gold. Items outside ``labels`` count nowhere."""
    tp: Counter[str] = Counter()
    for g, p in zip(gold, pred, strict=True):
        if g == p:
            tp[g] += 1
    n_pred, n_gold = Counter(pred), Counter(gold)
    return [tp[x] for x in labels], [n_pred[x] for x in labels], [n_gold[x] for x in labels]


def _resolve_labels(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None) -> list[str]:
    _check_lengths(gold, pred)
    if labels is None:
        if not gold:
            raise InvalidRequestError("no items to score: give at least one gold label and prediction")
        return label_set(gold, pred)
    out = list(labels)
    if not out:
        raise InvalidRequestError("labels is empty: give at least one label, or None for all of them")
    if len(set(out)) != len(out):
        dupes = sorted(x for x, c in Counter(out).items() if c > 1)
        raise InvalidRequestError(f"labels repeat: {', '.join(dupes)}")
    return out


def _prf(tp: int, n_pred: int, n_gold: int) -> PRF:
    # F1 from the counts, 2·tp / (n_pred + n_gold), as scikit-learn computes it.
    return PRF(_div(tp, n_pred), _div(tp, n_gold), _div(2 * tp, n_pred + n_gold), n_gold)


def per_class_prf(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None
) -> dict[str, PRF]:
    """Precision, recall, F1 and support for each label, in ``labels`` order (default: sorted union).

    Like ``precision_recall_fscore_support(gold, pred, labels=labels, average=None, zero_division=0)``.
    """
    labs = _resolve_labels(gold, pred, labels)
    tp, n_pred, n_gold = _counts(gold, pred, labs)
    return {lab: _prf(t, p, g) for lab, t, p, g in zip(labs, tp, n_pred, n_gold, strict=True)}


def precision_recall_f1(
    gold: Sequence[str], pred: Sequence[str], average: Average = "macro", labels: Sequence[str] | None = None
) -> PRF:
    """Averaged precision, recall and F1, scikit-learn's ``average=`` with ``zero_division=0``:

    * ``micro`` — pool true positives, predictions and gold counts over the labels, then divide (for
      single-label data scored over all labels this equals accuracy);
    * ``macro`` — the unweighted mean of the per-class values (F1 is the mean of per-class F1s, not the F1
      of the mean precision and recall);
    * ``weighted`` — the per-class values weighted by support (gold count); if no label has support the
      weights are dropped, as scikit-learn does.

    ``support`` of the result is the number of gold items whose label is among ``labels``.
    """
    labs = _resolve_labels(gold, pred, labels)
    tp, n_pred, n_gold = _counts(gold, pred, labs)
    support = sum(n_gold)
    if average == "micro":
        return _prf(sum(tp), sum(n_pred), sum(n_gold))
    per = [_prf(t, p, g) for t, p, g in zip(tp, n_pred, n_gold, strict=True)]
    if average == "macro" or (average == "weighted" and support == 0):
        weights = [1.0] * len(per)
    elif average == "weighted":
        weights = [float(g) for g in n_gold]
    else:
        raise InvalidRequestError(f"unknown average {average!r}: use one of {', '.join(AVERAGES)}")
    total = sum(weights)

    def mean(values: list[float]) -> float:
        return sum(w * v for w, v in zip(weights, values, strict=True)) / total

    return PRF(
        mean([s.precision for s in per]), mean([s.recall for s in per]), mean([s.f1 for s in per]), support
    )


def confusion_matrix(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None
) -> ConfusionMatrix:
    """Counts of (gold, predicted) pairs; rows are gold labels and columns predictions, both in ``labels``
    order (default: the sorted union of gold and predictions). Pairs with a label outside ``labels`` are not
    counted, as in ``sklearn.metrics.confusion_matrix``."""
    labs = _resolve_labels(gold, pred, labels)
    index = {lab: i for i, lab in enumerate(labs)}
    matrix = [[0] * len(labs) for _ in labs]
    for g, p in zip(gold, pred, strict=True):
        i, j = index.get(g), index.get(p)
        if i is not None and j is not None:
            matrix[i][j] += 1
    return ConfusionMatrix(labs, matrix)


def classification_report(
    gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None
) -> ClassificationReport:
    """Everything at once: accuracy, per-class and averaged precision/recall/F1, and the confusion matrix."""
    labs = _resolve_labels(gold, pred, labels)
    return ClassificationReport(
        n=len(gold),
        accuracy=accuracy(gold, pred),
        labels=labs,
        per_class=per_class_prf(gold, pred, labs),
        macro=precision_recall_f1(gold, pred, "macro", labs),
        micro=precision_recall_f1(gold, pred, "micro", labs),
        weighted=precision_recall_f1(gold, pred, "weighted", labs),
        confusion=confusion_matrix(gold, pred, labs),
    )


# ---- generation: words -------------------------------------------------------------------------------------


def jieba_words(text: str) -> list[str]:
    """Every word jieba finds in ``text.strip()`` (accurate mode, HMM on), whitespace tokens included and
    nothing filtered: ``list(jieba.cut(text.strip()))``, as ChatGLM3's fine-tuning demo tokenises both the
    prediction and the label. (``glmkit.kb.text.tokens`` is for search: it drops stop words.)"""
    text = text.strip()
    if not text:
        return []
    words: list[str] = jieba_module().lcut(text)
    return words


# ---- generation: ROUGE (rouge-chinese) ---------------------------------------------------------------------


@dataclass(frozen=True)
class RougeScores:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-scores of one pair, fractions in [0, 1]."""

    rouge1: float
    rouge2: float
    rouge_l: float


# rouge-chinese's Rouge.cut_sent: a line break after sentence-final punctuation (unless a closing quote
# follows), after "......" and after "……".
_CUT_SENT = (
    (re.compile(r"([。！？\?])([^”’])"), r"\1\n\2"),
    (re.compile(r"(\.{6})([^”’])"), r"\1\n\2"),
    (re.compile(r"(…{2})([^”’])"), r"\1\n\2"),
    (re.compile(r"([。！？\?][”’])([^，。！？\?])"), r"\1\n\2"),
)


def rouge_tokens(words: Sequence[str]) -> list[str]:
    """The tokens rouge-chinese scores for ``Rouge().get_scores(' '.join(words), …)``.

    rouge-chinese cuts the joined text into sentences, drops empty ones, collapses the whitespace inside each
    and splits it on single spaces, then flattens the sentences into one token list. So whitespace words
    from jieba disappear, and a sentence made only of whitespace (possible when the text has line breaks)
    becomes one empty-string token — kept here, because rouge-chinese counts it.
    """
    text = " ".join(words)
    for rx, repl in _CUT_SENT:
        text = rx.sub(repl, text)
    out: list[str] = []
    for sentence in text.rstrip().split("\n"):
        if sentence:
            out.extend(" ".join(sentence.split()).split(" "))
    return out


def _f_score(p: float, r: float) -> float:
    return 2.0 * ((p * r) / (p + r + 1e-8))  # rouge-chinese's F, epsilon included


def rouge_n(hyp_tokens: Sequence[str], ref_tokens: Sequence[str], n: int) -> float:
    """ROUGE-N F-score as rouge-chinese computes it by default (``exclusive=True``): over the *sets* of
    distinct n-grams, so a repeated n-gram counts once. 0.0 when either side has no tokens."""
    if n < 1:
        raise InvalidRequestError(f"ROUGE-N needs n >= 1, not {n}")
    if not hyp_tokens or not ref_tokens:
        return 0.0
    hyp = {tuple(hyp_tokens[i : i + n]) for i in range(len(hyp_tokens) - n + 1)}
    ref = {tuple(ref_tokens[i : i + n]) for i in range(len(ref_tokens) - n + 1)}
    overlap = len(hyp & ref)
    return _f_score(_div(overlap, len(hyp)), _div(overlap, len(ref)))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len(a)·len(b)) time, O(len(b))
    memory)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(hyp_tokens: Sequence[str], ref_tokens: Sequence[str]) -> float:
    """ROUGE-L F-score as rouge-chinese's ``rouge_l_summary_level`` computes it for our input: the LCS of the
    whole token lists over their lengths (all tokens, repeats included). 0.0 when either side is empty."""
    if not hyp_tokens or not ref_tokens:
        return 0.0
    lcs = lcs_length(ref_tokens, hyp_tokens)
    return _f_score(lcs / len(hyp_tokens), lcs / len(ref_tokens))


def rouge_scores(hyp_words: Sequence[str], ref_words: Sequence[str]) -> RougeScores:
    """ROUGE-1/2/L F-scores of one pair of word lists, equal to
    ``Rouge().get_scores(' '.join(hyp_words), ' '.join(ref_words))[0][m]['f']``.

    rouge-chinese raises on an empty hypothesis or reference; here such a pair scores 0.0.
    """
    hyp, ref = rouge_tokens(hyp_words), rouge_tokens(ref_words)
    return RougeScores(rouge_n(hyp, ref, 1), rouge_n(hyp, ref, 2), rouge_l(hyp, ref))


# ---- generation: BLEU-4 on jieba words (nltk sentence_bleu, smoothing method 3) ----------------------------


def _ngram_counts(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu4(ref_words: Sequence[str], hyp_words: Sequence[str]) -> float:
    """Sentence BLEU-4 in [0, 1], equal to nltk's
    ``sentence_bleu([ref_words], hyp_words, smoothing_function=SmoothingFunction().method3)``.

    Modified (clipped) n-gram precisions for n = 1..4, each precision whose count of matches is 0 replaced by
    1 / (2^k · number of hypothesis n-grams) for the k-th such order (NIST geometric smoothing; a
    hypothesis shorter than n has 1 as that denominator), geometric mean with equal weights, times the
    brevity penalty exp(1 − r/c) when c ≤ r. No unigram match (an empty hypothesis included) gives 0.
    """
    matches: list[int] = []
    totals: list[int] = []
    for n in range(1, 5):
        hyp = _ngram_counts(hyp_words, n)
        ref = _ngram_counts(ref_words, n)
        matches.append(sum(min(c, ref[g]) for g, c in hyp.items()))
        totals.append(max(1, sum(hyp.values())))
    if matches[0] == 0:
        return 0.0
    c, r = len(hyp_words), len(ref_words)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    precisions: list[float] = []
    k = 1
    for m, t in zip(matches, totals, strict=True):
        if m == 0:
            precisions.append(1 / (2**k * t))
            k += 1
        else:
            precisions.append(m / t)
    return bp * math.exp(math.fsum(0.25 * math.log(p) for p in precisions))


# ---- generation: BLEU-4 on characters (sacrebleu corpus_bleu, tokenize="zh") ------------------------------

# sacrebleu's TokenizerZh ranges. sacrebleu writes two of them as '\u20000'..'\u2a6d6' and
# '\u2f800'..'\u2fa1d', meaning the supplementary planes; Python reads those as two-character strings, and
# comparing one character against them selects U+2001..U+2A6D and U+2F81..U+2FA1 instead. We keep what
# sacrebleu actually does: that is the tokenization its published scores use.
_ZH_RANGES: tuple[tuple[int, int], ...] = (
    (0x3400, 0x4DB5),
    (0x4E00, 0x9FA5),
    (0x9FA6, 0x9FBB),
    (0xF900, 0xFA2D),
    (0xFA30, 0xFA6A),
    (0xFA70, 0xFAD9),
    (0x2001, 0x2A6D),  # sic, see above
    (0x2F81, 0x2FA1),  # sic, see above
    (0xFF00, 0xFFEF),
    (0x2E80, 0x2EFF),
    (0x3000, 0x303F),
    (0x31C0, 0x31EF),
    (0x2F00, 0x2FDF),
    (0x2FF0, 0x2FFF),
    (0x3100, 0x312F),
    (0x31A0, 0x31BF),
    (0xFE10, 0xFE1F),
    (0xFE30, 0xFE4F),
    (0x2600, 0x26FF),
    (0x2700, 0x27BF),
    (0x3200, 0x32FF),
    (0x3300, 0x33FF),
)

# sacrebleu's TokenizerRegexp (the language-dependent half of mteval-v13a), applied in this order.
_13A_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # most ASCII punctuation and symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period and comma unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # period and comma unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # a dash after a digit
)


@lru_cache(maxsize=4096)
def is_sacrebleu_zh_char(char: str) -> bool:
    """Whether sacrebleu's ``zh`` tokenizer makes ``char`` a token of its own."""
    o = ord(char)
    return any(lo <= o <= hi for lo, hi in _ZH_RANGES)


def sacrebleu_zh_tokens(text: str) -> list[str]:
    """Tokens of ``text`` under sacrebleu's ``zh`` tokenizer: strip, put spaces around every CJK character
    (and full-width form, CJK punctuation, …), then tokenise the rest like ``13a`` (punctuation split off,
    periods and commas kept inside numbers), and split on whitespace. Case is kept."""
    line = "".join(f" {ch} " if is_sacrebleu_zh_char(ch) else ch for ch in text.strip())
    for rx, repl in _13A_RULES:
        line = rx.sub(repl, line)
    return line.split()


@dataclass(frozen=True)
class CorpusBleu:
    """sacrebleu-style corpus BLEU: ``score`` and ``precisions`` on a 0–100 scale."""

    score: float
    precisions: list[float]
    bp: float
    sys_len: int
    ref_len: int
    matches: list[int]
    totals: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "precisions": self.precisions,
            "bp": self.bp,
            "sys_len": self.sys_len,
            "ref_len": self.ref_len,
            "matches": self.matches,
            "totals": self.totals,
        }


def _sacrebleu_log(x: float) -> float:
    return -9999999999.0 if x == 0.0 else math.log(x)  # sacrebleu's my_log


def corpus_bleu_zh(hyps: Sequence[str], refs: Sequence[str]) -> CorpusBleu:
    """Corpus BLEU-4 equal to ``sacrebleu.corpus_bleu(hyps, [refs], tokenize='zh').score`` (one reference
    per hypothesis; defaults otherwise: exp smoothing, case kept, no effective order).

    Matches and n-gram counts are summed over the corpus before dividing; an order with no match gets
    100 / (2^k · count) for the k-th such order; the brevity penalty uses the summed lengths. No match at
    all, or no hypothesis n-gram of some order, gives 0 (sacrebleu floors log 0).
    """
    _check_lengths(refs, hyps, ("references", "hypotheses"))
    matches, totals = [0] * 4, [0] * 4
    sys_len = ref_len = 0
    for hyp_text, ref_text in zip(hyps, refs, strict=True):
        hyp, ref = sacrebleu_zh_tokens(hyp_text), sacrebleu_zh_tokens(ref_text)
        sys_len += len(hyp)
        ref_len += len(ref)
        for n in range(1, 5):
            ref_counts = _ngram_counts(ref, n)
            for gram, count in _ngram_counts(hyp, n).items():
                totals[n - 1] += count
                matches[n - 1] += min(count, ref_counts[gram])
    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    precisions = [0.0] * 4
    if not any(matches):
        return CorpusBleu(0.0, precisions, bp, sys_len, ref_len, matches, totals)
    smooth = 1.0
    for n in range(4):
        if totals[n] == 0:
            break
        if matches[n] == 0:
            smooth *= 2
            precisions[n] = 100.0 / (smooth * totals[n])
        else:
            precisions[n] = 100.0 * matches[n] / totals[n]
    score = bp * math.exp(sum([_sacrebleu_log(p) for p in precisions]) / 4)
    return CorpusBleu(score, precisions, bp, sys_len, ref_len, matches, totals)


# ---- generation: the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationSample:
    """Scores of one pair on a 0–100 scale."""

    rouge1: float
    rouge2: float
    rouge_l: float
    bleu4_jieba: float


@dataclass(frozen=True)
class GenerationReport:
    kind: ClassVar[str] = "generation"

    n: int
    rouge1: float
    rouge2: float
    rouge_l: float
    bleu4_jieba: float
    bleu4_char_sacrebleu: float
    sacrebleu: CorpusBleu
    n_empty_pred: int
    n_empty_ref: int
    samples: list[GenerationSample]

    def as_dict(self, *, samples: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "n": self.n,
            "rouge-1": self.rouge1,
            "rouge-2": self.rouge2,
            "rouge-l": self.rouge_l,
            "bleu4_jieba": self.bleu4_jieba,
            "bleu4_char_sacrebleu": self.bleu4_char_sacrebleu,
            "sacrebleu": self.sacrebleu.as_dict(),
            "n_empty_pred": self.n_empty_pred,
            "n_empty_ref": self.n_empty_ref,
            "convention": {
                "scale": "0-100",
                "rouge": "rouge-chinese F, space-joined jieba words, mean over samples (ChatGLM3 demo)",
                "bleu4_jieba": "nltk sentence_bleu, SmoothingFunction().method3, jieba words, sample mean",
                "bleu4_char_sacrebleu": "sacrebleu corpus_bleu(tokenize='zh'): CJK chars, 13a for the rest",
                "empty": "an empty prediction or reference scores 0 in the per-sample metrics",
            },
        }
        if samples:
            d["samples"] = [
                {"rouge-1": s.rouge1, "rouge-2": s.rouge2, "rouge-l": s.rouge_l, "bleu4_jieba": s.bleu4_jieba}
                for s in self.samples
            ]
        return d


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def score_generation_pair(pred: str, ref: str) -> GenerationSample:
    """ROUGE-1/2/L and BLEU-4 (jieba words, nltk method 3) of one prediction against one reference, 0–100."""
    hyp_words, ref_words = jieba_words(pred), jieba_words(ref)
    r = rouge_scores(hyp_words, ref_words)
    return GenerationSample(
        100 * r.rouge1, 100 * r.rouge2, 100 * r.rouge_l, 100 * sentence_bleu4(ref_words, hyp_words)
    )


def generation_report(preds: Sequence[str], refs: Sequence[str]) -> GenerationReport:
    """Score predictions against references (one each), on a 0–100 scale.

    ``rouge1``/``rouge2``/``rouge_l`` and ``bleu4_jieba`` are per-sample scores averaged (ChatGLM3's
    fine-tuning demo, which rounds each ROUGE to 4 decimals first and reports BLEU on 0–1: we do neither);
    ``bleu4_char_sacrebleu`` is one corpus-level score. Empty predictions and references are scored (0 in
    the per-sample metrics), never an error.
    """
    _check_lengths(refs, preds, ("references", "predictions"))
    if not preds:
        raise InvalidRequestError("no items to score: give at least one prediction and reference")
    samples = [score_generation_pair(p, r) for p, r in zip(preds, refs, strict=True)]
    sacre = corpus_bleu_zh(preds, refs)
    return GenerationReport(
        n=len(preds),
        rouge1=_mean([s.rouge1 for s in samples]),
        rouge2=_mean([s.rouge2 for s in samples]),
        rouge_l=_mean([s.rouge_l for s in samples]),
        bleu4_jieba=_mean([s.bleu4_jieba for s in samples]),
        bleu4_char_sacrebleu=sacre.score,
        sacrebleu=sacre,
        n_empty_pred=sum(1 for p in preds if not p.strip()),
        n_empty_ref=sum(1 for r in refs if not r.strip()),
        samples=samples,
    )


# ---- retrieval ---------------------------------------------------------------------------------------------


def _check_k(k: int) -> None:
    if k < 1:
        raise InvalidRequestError(f"k must be at least 1, not {k}")


def recall_at_k(retrieved: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Fraction of the distinct relevant ids found among the first ``k`` retrieved ids. Undefined (an
    error) for a query with no relevant id."""
    _check_k(k)
    rel = set(relevant)
    if not rel:
        raise InvalidRequestError("recall@k is undefined for a query with no relevant ids")
    return len(rel & set(retrieved[:k])) / len(rel)


def hit_at_k(retrieved: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """1.0 if any relevant id is among the first ``k`` retrieved ids, else 0.0."""
    _check_k(k)
    rel = set(relevant)
    return 1.0 if any(x in rel for x in retrieved[:k]) else 0.0


def reciprocal_rank(retrieved: Sequence[str], relevant: Iterable[str]) -> float:
    """1 / rank of the first relevant id in the whole retrieved list (ranks from 1), 0.0 if none is there."""
    rel = set(relevant)
    for rank, x in enumerate(retrieved, 1):
        if x in rel:
            return 1 / rank
    return 0.0


@dataclass(frozen=True)
class RetrievalQuery:
    retrieved: list[str]
    relevant: list[str]


@dataclass(frozen=True)
class RetrievalReport:
    kind: ClassVar[str] = "retrieval"

    n: int  # queries scored
    n_skipped: int  # queries without relevant ids: not in any mean
    ks: list[int]
    recall: dict[int, float]
    hit: dict[int, float]
    mrr: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n": self.n,
            "n_skipped": self.n_skipped,
            "ks": self.ks,
            "recall_at_k": {str(k): v for k, v in self.recall.items()},
            "hit_at_k": {str(k): v for k, v in self.hit.items()},
            "mrr": self.mrr,
            "convention": "means over queries with at least one relevant id; fractions in [0, 1]",
        }


def retrieval_report(queries: Sequence[RetrievalQuery], ks: Sequence[int] = (1, 5, 10)) -> RetrievalReport:
    """Mean recall@k and hit@k for each k, and MRR (over the whole retrieved lists), over the queries that
    have relevant ids; queries without any are counted in ``n_skipped`` and left out of every mean."""
    kk = sorted(set(ks))
    if not kk:
        raise InvalidRequestError("give at least one k")
    for k in kk:
        _check_k(k)
    scored = [q for q in queries if q.relevant]
    if not scored:
        raise InvalidRequestError(
            f"no query to score: {len(queries)} queries, none with a relevant id"
            if queries
            else "no query to score: the run is empty"
        )
    return RetrievalReport(
        n=len(scored),
        n_skipped=len(queries) - len(scored),
        ks=kk,
        recall={k: _mean([recall_at_k(q.retrieved, q.relevant, k) for q in scored]) for k in kk},
        hit={k: _mean([hit_at_k(q.retrieved, q.relevant, k) for q in scored]) for k in kk},
        mrr=_mean([reciprocal_rank(q.retrieved, q.relevant) for q in scored]),
    )


Report = ClassificationReport | GenerationReport | RetrievalReport

__all__ = [
    "AVERAGES",
    "PRF",
    "Average",
    "ClassificationReport",
    "ConfusionMatrix",
    "CorpusBleu",
    "GenerationReport",
    "GenerationSample",
    "Report",
    "RetrievalQuery",
    "RetrievalReport",
    "RougeScores",
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "corpus_bleu_zh",
    "generation_report",
    "hit_at_k",
    "jieba_words",
    "label_set",
    "lcs_length",
    "per_class_prf",
    "precision_recall_f1",
    "recall_at_k",
    "reciprocal_rank",
    "retrieval_report",
    "rouge_l",
    "rouge_n",
    "rouge_scores",
    "rouge_tokens",
    "sacrebleu_zh_tokens",
    "score_generation_pair",
    "sentence_bleu4",
]
