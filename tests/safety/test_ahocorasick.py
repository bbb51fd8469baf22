"""The Aho–Corasick automaton against a brute-force search: random patterns and texts over small alphabets
(so that overlaps, shared prefixes and patterns inside patterns are common), Chinese included."""

from __future__ import annotations

import random

import pytest

from glmkit.safety.ahocorasick import Automaton


def brute_force(patterns: list[str], text: str) -> list[tuple[int, int, int]]:
    found = []
    for i, p in enumerate(patterns):
        if not p:
            continue
        start = text.find(p)
        while start != -1:
            found.append((start, start + len(p), i))
            start = text.find(p, start + 1)
    return sorted(found)


@pytest.mark.parametrize("alphabet", ["ab", "abc", "abcd", "傻逼网赌毒", "aAé中"])
def test_matches_brute_force_on_random_texts(alphabet: str) -> None:
    rng = random.Random(f"ac-{alphabet}")
    for _ in range(150):
        patterns = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(rng.randint(1, 25))
        ]
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        got = sorted(Automaton(patterns).find_all(text))
        assert got == brute_force(patterns, text), (patterns, text)


def test_duplicates_empty_patterns_and_offsets() -> None:
    a = Automaton(["he", "she", "his", "hers", "", "he"])
    assert sorted(a.find_all("ushers")) == [(1, 4, 1), (2, 4, 0), (2, 4, 5), (2, 6, 3)]
    assert list(a.find_all("")) == []
    assert sorted(a.find_all("xxhe", start=2)) == [(2, 4, 0), (2, 4, 5)]
    assert a.max_length == 4 and len(a) == 6
    assert list(Automaton([]).find_all("anything")) == []
