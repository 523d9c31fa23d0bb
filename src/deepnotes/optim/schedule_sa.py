"""Step-size schedules a_k (k = 1, 2, ...) for stochastic approximation, with their convergence conditions.

Robbins-Monro needs  sum_k a_k = inf  (steps stay large enough to reach the root from anywhere) and
sum_k a_k^2 < inf  (the injected noise a_k eps_k has finite total variance, so it averages out). For
c / k^a both hold exactly when 1/2 < a <= 1; a constant step satisfies the first and breaks the second,
so its iterates keep jittering at a noise floor. Schedules know which conditions they meet, and
:func:`check_robbins_monro` turns a violation into an error that says which sum misbehaves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Power:
    """a_k = c / k^a. ``Power(1, 1)`` is the classic 1/k (the incremental mean)."""

    c: float = 1.0
    a: float = 1.0

    def __post_init__(self) -> None:
        if not self.c > 0:
            raise ValueError(f"step schedule c/k^a needs c > 0, got c={self.c}")
        if not self.a >= 0:
            raise ValueError(f"step schedule c/k^a needs a >= 0 (steps must not grow), got a={self.a}")

    def __call__(self, k: int) -> float:
        return self.c / k**self.a

    @property
    def sum_diverges(self) -> bool:  # sum k^-a = inf  <=>  a <= 1
        return self.a <= 1

    @property
    def sum_squares_finite(self) -> bool:  # sum k^-2a < inf  <=>  a > 1/2
        return self.a > 0.5

    def __str__(self) -> str:
        return f"{self.c:g}/k^{self.a:g}"


@dataclass(frozen=True)
class Constant:
    """a_k = c: tracks a moving target, but never averages the noise away (sum a_k^2 = inf)."""

    c: float

    def __post_init__(self) -> None:
        if not self.c > 0:
            raise ValueError(f"constant step needs c > 0, got c={self.c}")

    def __call__(self, k: int) -> float:
        return self.c

    sum_diverges = True
    sum_squares_finite = False

    def __str__(self) -> str:
        return f"constant {self.c:g}"


Schedule = Power | Constant


def harmonic(c: float = 1.0) -> Power:
    """a_k = c / k."""
    return Power(c, 1.0)


def check_robbins_monro(schedule: Schedule) -> None:
    """Raise ValueError naming the broken condition when ``schedule`` cannot give Robbins-Monro
    convergence."""
    problems = []
    if not schedule.sum_diverges:
        problems.append("sum a_k < inf (steps shrink so fast that the iterate can stall before the root; "
                        "use an exponent a <= 1)")
    if not schedule.sum_squares_finite:
        problems.append("sum a_k^2 = inf (the noise never averages out, the iterate keeps jittering; "
                        "use a decreasing c/k^a with a > 1/2)")
    if problems:
        raise ValueError(f"step schedule {schedule} breaks the Robbins-Monro conditions: "
                         f"{'; '.join(problems)}. To run it anyway: require_convergence=False (CLI: "
                         "--allow-nonconvergent).")


_POWER = re.compile(r"^\s*(?P<c>[0-9.eE+-]+)?\s*/\s*k(\s*\^\s*(?P<a>[0-9.eE+-]+))?\s*$")


def parse_schedule(text: str) -> Schedule:
    """``"1/k"``, ``"0.5/k^0.7"``, ``"const:0.1"`` -> a schedule (for the command line)."""
    if text.startswith("const:"):
        try:
            return Constant(float(text[len("const:"):]))
        except ValueError as exc:
            raise ValueError(f"bad constant schedule {text!r}: {exc}") from exc
    match = _POWER.match(text)
    if not match:
        raise ValueError(f"bad schedule {text!r}; expected e.g. '1/k', '0.5/k^0.7' or 'const:0.1'")
    return Power(float(match["c"] or 1.0), float(match["a"] or 1.0))
