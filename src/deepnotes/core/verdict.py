"""Verdicts decided on repeated measurements: the statistics behind ``deepnotes reproduce``.

A claim declares, before anything is measured, the quantity it tests (a difference or a ratio), the bound,
and the side of the bound the claim puts the quantity on: a :class:`Test`. The claim function measures the
quantity ``n`` times (seeds for trainings, interleaved rounds for timings); :func:`evidence` turns the ``n``
values into an estimate with a 95% interval and one of three outcomes:

* ``held``: the interval lies wholly on the claim's side of the bound;
* ``refuted``: it lies wholly on the other side;
* ``inconclusive``: it straddles (or touches) the bound, or there is no interval (one measurement of a noisy
  quantity), or every arm of the comparison sits at the metric's floor or ceiling (:func:`floor_reason`:
  AP 0 for all, BLEU 0 for all, accuracy 1.0 for all), where the comparison cannot separate anything.

Intervals: ``method="t"`` is Student's t-interval on the mean of the ``n`` values (paired differences or log
ratios, one per seed or round), from ``scipy.stats.ttest_1samp``; ``method="bootstrap"`` is scipy's BCa
bootstrap of the mean (for many non-normal values, e.g. per-item errors); ``scale="log"`` takes positive
ratios, computes the interval on their logarithms and reports it back as ratios (a geometric mean).
``method="exact"``: an algebraic identity or a deterministic count (FLOPs, bytes), measured once, no
interval, decided by the side its value lies on.

A claim with several tests holds when every deciding test holds, is refuted when any is refuted, and is
inconclusive otherwise; tests with ``decides=False`` are reported with their intervals as information.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

VERDICTS = ("held", "refuted", "inconclusive", "error")
SIDES = (">", "<")
METHODS = ("t", "bootstrap", "exact")
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Test:
    """What a claim tests: ``quantity`` (in words, with its unit) on ``side`` of ``bound``.

    ``name``: the key under which the claim returns its measurements (``Outcome.samples``).
    """

    __test__ = False  # not a pytest test class, whatever its name

    name: str
    quantity: str
    side: str
    bound: float
    method: str = "t"
    scale: str = "linear"
    decides: bool = True

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"test {self.name!r}: side {self.side!r}; valid: {', '.join(SIDES)}")
        if self.method not in METHODS:
            raise ValueError(f"test {self.name!r}: method {self.method!r}; valid: {', '.join(METHODS)}")
        if self.scale not in ("linear", "log"):
            raise ValueError(f"test {self.name!r}: scale {self.scale!r}; valid: linear, log")
        if self.scale == "log" and self.bound <= 0:
            raise ValueError(f"test {self.name!r}: a ratio's bound must be > 0")

    @property
    def exact(self) -> bool:
        return self.method == "exact"

    def describe(self) -> str:
        """The test in words: "<quantity> > 0 (95% t-interval wholly above)"."""
        how = {"t": "95% t-interval", "bootstrap": "95% BCa bootstrap interval"}.get(self.method)
        where = "above" if self.side == ">" else "below"
        rule = "exact value" if how is None else f"{how} wholly {where}"
        info = "" if self.decides else " [information, not part of the verdict]"
        return f"{self.quantity} {self.side} {self.bound:g} ({rule}){info}"


@dataclass
class Evidence:
    """One test's measurements, estimate, 95% interval (None: exact, or one measurement) and verdict."""

    test: Test
    samples: list[float]
    estimate: float | None
    interval: tuple[float, float] | None
    verdict: str
    reason: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.samples)

    def as_json(self) -> dict:
        t = self.test
        return {"name": t.name, "quantity": t.quantity, "side": t.side, "bound": t.bound, "method": t.method,
                "scale": t.scale, "decides": t.decides, "n": self.n, "estimate": _finite(self.estimate),
                "interval": None if self.interval is None else [_finite(v) for v in self.interval],
                "verdict": self.verdict, "reason": self.reason, "samples": [_finite(v) for v in self.samples]}


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def mean_interval(values: Sequence[float], method: str = "t",
                  confidence: float = CONFIDENCE) -> tuple[float, tuple[float, float] | None]:
    """Mean of ``values`` and its ``confidence`` interval (None for fewer than two values).

    All values equal: the interval is that value (no spread was observed; scipy would return NaN).
    """
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, None
    if np.ptp(x) == 0:
        return mean, (mean, mean)
    if method == "bootstrap":
        res = stats.bootstrap((x,), np.mean, confidence_level=confidence, method="BCa",
                              rng=np.random.default_rng(0))
        lo, hi = res.confidence_interval
        if not (math.isfinite(lo) and math.isfinite(hi)):  # BCa undefined (e.g. a lone outlier): percentile
            lo, hi = stats.bootstrap((x,), np.mean, confidence_level=confidence, method="percentile",
                                     rng=np.random.default_rng(0)).confidence_interval
        return mean, (float(lo), float(hi))
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return mean, (float(ci.low), float(ci.high))


def decide(test: Test, estimate: float | None, interval: tuple[float, float] | None,
           reason: str = "") -> tuple[str, str]:
    """(verdict, reason) for an estimate and its interval against the test's bound."""
    if reason:
        return "inconclusive", reason
    if estimate is None or not math.isfinite(estimate):
        return "inconclusive", "no finite measurement"
    above = test.side == ">"
    if test.exact:
        ok = estimate > test.bound if above else estimate < test.bound
        return ("held" if ok else "refuted"), "exact: one measurement, no sampling noise"
    if interval is None:
        return "inconclusive", "one measurement (n = 1): no interval, so noise cannot be told from effect"
    lo, hi = interval
    claim_side = lo > test.bound if above else hi < test.bound
    other_side = hi < test.bound if above else lo > test.bound
    if claim_side:
        return "held", ""
    if other_side:
        return "refuted", ""
    return "inconclusive", f"the 95% interval [{lo:.4g}, {hi:.4g}] contains the bound {test.bound:g}"


def evidence(test: Test, samples: Sequence[float] | float, floor: str = "") -> Evidence:
    """Estimate, interval and verdict of ``test`` from its measurements (one number for an exact test).

    ``floor``: the reason every arm sits at the metric's floor or ceiling (see :func:`floor_reason`); the
    test is then inconclusive whatever the numbers.
    """
    values = [float(samples)] if isinstance(samples, int | float) else [float(v) for v in samples]
    if test.exact and len(values) != 1:
        raise ValueError(f"exact test {test.name!r} takes one value, got {len(values)}")
    if not values or not all(math.isfinite(v) for v in values):
        return Evidence(test, values, None, None, "inconclusive",
                        floor or "missing or non-finite measurement")
    if test.scale == "log":
        if min(values) <= 0:
            return Evidence(test, values, None, None, "inconclusive",
                            floor or "a ratio <= 0 has no logarithm")
        mean, ci = mean_interval(np.log(values), test.method if not test.exact else "t")
        estimate = math.exp(mean)
        interval = None if ci is None or test.exact else (math.exp(ci[0]), math.exp(ci[1]))
    else:
        estimate, interval = mean_interval(values, test.method if not test.exact else "t")
        interval = None if test.exact else interval
    verdict, reason = decide(test, estimate, interval, floor)
    return Evidence(test, values, estimate, interval, verdict, reason)


def combine(parts: Sequence[Evidence]) -> tuple[str, Evidence]:
    """A claim's verdict from its tests' evidence, and the evidence that decided it: the first refuted
    test, else the first inconclusive one, else the first test (all held)."""
    deciding = [e for e in parts if e.test.decides]
    if not deciding:
        raise ValueError("a claim needs at least one deciding test")
    for verdict in ("refuted", "inconclusive"):
        hit = next((e for e in deciding if e.verdict == verdict), None)
        if hit is not None:
            return verdict, hit
    return "held", deciding[0]


def floor_reason(arms: Mapping[str, Sequence[float] | float], metric: str, floor: float | None = None,
                 ceiling: float | None = None) -> str:
    """The reason a comparison cannot decide when every value of every arm sits at the metric's ``floor``
    (AP 0, BLEU 0) or ``ceiling`` (accuracy 1.0); "" otherwise."""
    values = [v for a in arms.values() for v in ([a] if isinstance(a, int | float) else a)]
    if not values:
        return ""
    names = ", ".join(arms)
    for bound, word, at in ((floor, "floor", lambda v, b: v <= b), (ceiling, "ceiling", lambda v, b: v >= b)):
        if bound is not None and all(at(v, bound) for v in values):
            return (f"every arm ({names}) sits at {metric}'s {word} ({bound:g}): at this size the metric "
                    "cannot separate them")
    return ""


def paired(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Paired differences a_i - b_i (the same seed, round or item on both sides)."""
    if len(a) != len(b):
        raise ValueError(f"paired measurements differ in length: {len(a)} and {len(b)}")
    return [float(x) - float(y) for x, y in zip(a, b, strict=True)]


def ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Paired ratios a_i / b_i (for a ``scale="log"`` test)."""
    if len(a) != len(b):
        raise ValueError(f"paired measurements differ in length: {len(a)} and {len(b)}")
    return [float(x) / float(y) for x, y in zip(a, b, strict=True)]
