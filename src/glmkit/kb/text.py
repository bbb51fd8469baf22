"""Chinese-first tokens for BM25: jieba's search-mode cut (words and their sub-words), lower-cased, with
punctuation and common function words dropped. ASCII words pass through whole."""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from typing import Any

_LOCK = threading.Lock()
_PUNCT = re.compile(r"^[\W_]+$", re.UNICODE)
STOPWORDS = frozenset(
    [
        "的",
        "了",
        "和",
        "是",
        "在",
        "也",
        "就",
        "都",
        "而",
        "及",
        "与",
        "着",
        "或",
        "一个",
        "没有",
        "我们",
        "你们",
        "他们",
        "它们",
        "这个",
        "那个",
        "这些",
        "那些",
        "什么",
        "怎么",
        "如何",
        "为什么",
        "吗",
        "呢",
        "吧",
        "啊",
        "哪",
        "哪些",
        "请问",
        "可以",
        "能",
        "会",
        "要",
        "把",
        "被",
        "让",
        "给",
        "对",
        "从",
        "到",
        "向",
        "以",
        "于",
        "为",
        "之",
        "其",
        "该",
        "并",
        "但",
        "如果",
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "on",
        "for",
        "is",
        "are",
        "was",
        "were",
        "be",
        "and",
        "or",
        "not",
        "with",
        "by",
        "as",
        "at",
        "it",
        "this",
        "that",
        "what",
        "how",
        "why",
        "which",
        "do",
        "does",
        "can",
        "i",
        "you",
        "we",
        "they",
    ]
)


@lru_cache(maxsize=1)
def jieba_module() -> Any:
    """jieba, its dictionary loaded once per process (thread-safe) and its chatter silenced; every glmkit
    module that segments Chinese gets it here."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    with _LOCK:
        jieba.initialize()
    return jieba


def tokens(text: str) -> list[str]:
    jieba = jieba_module()
    out = []
    for t in jieba.lcut_for_search(text):
        t = t.strip().lower()
        if t and not _PUNCT.match(t) and t not in STOPWORDS:
            out.append(t)
    return out
