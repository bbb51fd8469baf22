from glmkit.runtime.guards import LoopDetector, StopScanner


def test_stop_scanner_cuts_across_chunks() -> None:
    s = StopScanner(["###", "END"])
    out = s.feed("abc#") + s.feed("#") + s.feed("#tail")
    assert out == "abc" and s.stopped
    assert s.feed("more") == "" and s.flush() == ""


def test_stop_scanner_releases_false_prefix() -> None:
    s = StopScanner(["END"])
    assert s.feed("THE EN") == "THE "
    assert s.feed("D?") == "" and s.stopped
    s = StopScanner(["END"])
    assert s.feed("EN") + s.feed("ough") + s.flush() == "ENough"


def test_loop_detector_flags_long_repeats_only() -> None:
    d = LoopDetector(max_period=8, min_repeats=4, min_span=32)
    assert not any(d.feed(t) for t in range(100))  # no repetition
    d = LoopDetector(max_period=8, min_repeats=4, min_span=32)
    flags = [d.feed(t) for t in [1, 2, 3] * 20]
    assert flags.index(True) == 31  # as soon as 32 tokens repeat with period 3
    d = LoopDetector(max_period=8, min_repeats=4, min_span=32)
    assert not any(d.feed(7) for _ in range(20))  # "哈哈哈…" under the span is fine


def test_loop_detector_ignores_periods_beyond_max() -> None:
    d = LoopDetector(max_period=4, min_repeats=4, min_span=16)
    pattern = list(range(10))
    assert not any(d.feed(t) for t in pattern * 6)
