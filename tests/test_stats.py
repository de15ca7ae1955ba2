"""Medians with bootstrap 95% intervals, on fixed data (fast tier: no engine, no VM)."""
import statistics

import pytest

from helpers.measure import stats

RUNS = [0.21, 0.19, 0.20, 0.35, 0.22, 0.18, 0.20, 0.21, 0.19, 0.24]


def test_interval_holds_the_median_and_is_seeded():
    low, high = stats.bootstrap_median_interval(RUNS)
    assert low <= statistics.median(RUNS) <= high
    assert (low, high) == stats.bootstrap_median_interval(RUNS)          # same runs, same answer
    assert (low, high) == pytest.approx((0.19, 0.225))                    # the figure itself
    # Inside the distribution-free interval of the median for ten runs (2nd to 9th smallest,
    # about 98%), and not dragged out by the one slow outlier.
    ordered = sorted(RUNS)
    assert ordered[1] <= low and high <= ordered[8] < 0.35


def test_interval_narrows_with_more_runs():
    few = stats.bootstrap_median_interval(RUNS[:4])
    many = stats.bootstrap_median_interval(RUNS * 4)
    assert many[1] - many[0] < few[1] - few[0]


def test_one_run_has_no_spread_and_none_is_an_error():
    assert stats.bootstrap_median_interval([3.0]) == (3.0, 3.0)
    with pytest.raises(ValueError):
        stats.bootstrap_median_interval([])


def test_summary_keeps_every_run_with_its_conditions():
    runs = stats.Runs()
    for i, v in enumerate(RUNS[:3]):
        runs.add(v, stats.Conditions(load_1m=1.0 + i, steal_percent=0.5))
    s = runs.summary()
    assert (s.n, s.median, s.min, s.max) == (3, 0.20, 0.19, 0.21)
    assert s.samples == (0.21, 0.19, 0.20)                # the order they ran in
    assert s.load_1m == (1.0, 2.0, 3.0) and s.steal_percent == (0.5, 0.5, 0.5)
    assert s.low_95 <= s.median <= s.high_95
    assert s.text("s") == "0.200 s [0.190–0.210, n=3]"


def test_conditions_read_this_machine():
    c = stats.conditions_now()
    assert c.load_1m >= 0 and 0 <= c.steal_percent <= 100


def test_summary_interval_never_falls_outside_the_runs():
    s = stats.summarize([5.25, 5.3, 5.6, 5.4, 5.35, 5.9, 5.28])
    assert s.min <= s.low_95 <= s.median <= s.high_95 <= s.max
    assert (s.min, s.max) == (5.25, 5.9)
