"""The verdict logic on constructed intervals and samples: held, refuted, inconclusive, floor/ceiling, exact,
and the intervals against scipy's own formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from deepnotes.core.verdict import (
    Test,
    combine,
    decide,
    evidence,
    floor_reason,
    mean_interval,
    paired,
    ratios,
)

ABOVE = Test("gain", "B - A (units)", ">", 0.0)
BELOW = Test("loss", "B - A (units)", "<", 0.0)


@pytest.mark.parametrize(("test", "interval", "verdict"), [
    (ABOVE, (0.1, 0.5), "held"),          # wholly on the claim's side
    (ABOVE, (-0.5, -0.1), "refuted"),     # wholly on the other side
    (ABOVE, (-0.1, 0.5), "inconclusive"),  # straddles the bound
    (ABOVE, (0.0, 0.5), "inconclusive"),  # touches it: not wholly above
    (BELOW, (-0.5, -0.1), "held"),
    (BELOW, (0.1, 0.5), "refuted"),
    (BELOW, (-0.5, 0.0), "inconclusive"),
])
def test_decide_on_constructed_intervals(test, interval, verdict):
    got, reason = decide(test, sum(interval) / 2, interval)
    assert got == verdict
    assert ("contains the bound" in reason) == (verdict == "inconclusive")


def test_a_single_noisy_measurement_is_inconclusive_an_exact_one_is_not():
    assert decide(ABOVE, 3.0, None)[0] == "inconclusive"
    assert "n = 1" in decide(ABOVE, 3.0, None)[1]
    exact = Test("identity", "max |a - b|", "<", 1e-6, method="exact")
    assert evidence(exact, 1e-9).verdict == "held" and evidence(exact, 1e-9).interval is None
    assert evidence(exact, 1e-3).verdict == "refuted"
    with pytest.raises(ValueError, match="one value"):
        evidence(exact, [1e-9, 2e-9])


def test_floor_and_ceiling_make_a_test_inconclusive_whatever_the_numbers():
    reason = floor_reason({"rle": [0.0, 0.0], "l1": [0.0, 0.0]}, "AP", floor=0.0)
    assert "floor" in reason and "rle, l1" in reason
    assert "ceiling" in floor_reason({"a": 1.0, "b": [1.0, 1.0]}, "accuracy", ceiling=1.0)
    assert floor_reason({"a": [0.0, 0.1], "b": [0.0, 0.0]}, "AP", floor=0.0) == ""  # one arm moved
    ev = evidence(ABOVE, [0.5, 0.6, 0.7], floor=reason)  # the interval alone would say held
    assert ev.verdict == "inconclusive" and ev.reason == reason and ev.interval is not None


def test_t_interval_is_scipys_student_interval_on_the_paired_differences():
    a, b = [1.0, 1.4, 0.9, 1.3, 1.1], [0.8, 1.0, 0.9, 1.0, 0.7]
    d = paired(a, b)
    mean, (lo, hi) = mean_interval(d)
    ref = stats.t.interval(0.95, len(d) - 1, loc=np.mean(d), scale=stats.sem(d))
    assert mean == pytest.approx(np.mean(d)) and (lo, hi) == pytest.approx(ref)
    assert evidence(ABOVE, d).verdict == "held"
    assert mean_interval([2.0, 2.0, 2.0]) == (2.0, (2.0, 2.0))  # no spread observed: the value itself


def test_log_scale_reports_a_geometric_mean_ratio_and_its_interval():
    r = ratios([2.0, 2.2, 1.9, 2.1], [1.0, 1.0, 1.0, 1.0])
    test = Test("speed", "time A / time B", ">", 1.5, scale="log")
    ev = evidence(test, r)
    logs = np.log(r)
    ref = stats.t.interval(0.95, len(r) - 1, loc=logs.mean(), scale=stats.sem(logs))
    assert ev.estimate == pytest.approx(math.exp(logs.mean()))
    assert ev.interval == pytest.approx(tuple(math.exp(v) for v in ref)) and ev.verdict == "held"
    assert evidence(test, [2.0, -1.0]).verdict == "inconclusive"  # a ratio <= 0 has no log


def test_bootstrap_interval_contains_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(1)
    small, big = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 400)
    m1, (lo1, hi1) = mean_interval(small, "bootstrap")
    m2, (lo2, hi2) = mean_interval(big, "bootstrap")
    assert lo1 < m1 < hi1 and lo2 < m2 < hi2 and hi2 - lo2 < hi1 - lo1


def test_combine_refuted_beats_inconclusive_beats_held_and_information_never_decides():
    held = evidence(ABOVE, [1.0, 1.1, 1.2])
    unsure = evidence(Test("u", "u", ">", 0.0), [1.0, -1.0, 0.5])
    refuted = evidence(Test("r", "r", ">", 0.0), [-1.0, -1.1, -1.2])
    info = evidence(Test("i", "i", ">", 0.0, decides=False), [-1.0, -1.1, -1.2])
    assert combine([held, unsure, refuted]) == ("refuted", refuted)
    assert combine([held, unsure]) == ("inconclusive", unsure)
    assert combine([held, info]) == ("held", held)
    with pytest.raises(ValueError, match="deciding"):
        combine([info])


def test_non_finite_measurements_are_inconclusive_and_bad_tests_refused():
    assert evidence(ABOVE, [1.0, float("nan")]).verdict == "inconclusive"
    with pytest.raises(ValueError, match="side"):
        Test("x", "x", ">=", 0.0)
    with pytest.raises(ValueError, match="bound must be > 0"):
        Test("x", "x", ">", 0.0, scale="log")
