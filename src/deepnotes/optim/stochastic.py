"""Stochastic approximation: incremental mean, Robbins-Monro, Kiefer-Wolfowitz, SGD as Robbins-Monro.

All iterates are numpy arrays; a leading batch axis runs independent replicates at once (the observation
functions see and return the whole batch), which is how the claims average over hundreds of runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from deepnotes.optim.schedule_sa import Power, Schedule, check_robbins_monro


class IncrementalMean:
    """Running mean in O(1) memory: m_k = m_{k-1} + (x_k - m_{k-1}) / k.

    This is Robbins-Monro with a_k = 1/k on g(m) = m - E[X]; after n samples it equals the batch mean
    (x_1 + ... + x_n) / n up to rounding. Samples may be scalars or arrays of one fixed shape.

    Late increments (x_k - m)/k become smaller than half a unit in the last place of m and are rounded
    away; in float32 that biases the mean (1e-4 relative after 1e5 samples offset by 1e3). ``compensated``
    keeps those lost low-order bits in a second accumulator (Kahan summation of the increments), which
    restores float precision at the cost of one more value of state.
    """

    def __init__(self, dtype: np.dtype | type = np.float64, compensated: bool = False) -> None:
        self.dtype = np.dtype(dtype)
        self.compensated = compensated
        self.count = 0
        self.mean: np.ndarray | None = None
        self._lost: np.ndarray | None = None  # rounding error of the last increments (compensated only)

    def update(self, x: float | np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype)
        if self.mean is None:
            self.mean, self._lost = np.zeros_like(x), np.zeros_like(x)
        elif x.shape != self.mean.shape:
            raise ValueError(f"sample {self.count + 1} has shape {x.shape}, earlier samples "
                             f"{self.mean.shape}")
        self.count += 1
        increment = (x - self.mean) / self.dtype.type(self.count)
        if not self.compensated:
            self.mean = self.mean + increment
            return self.mean
        increment = increment - self._lost
        new_mean = self.mean + increment
        self._lost = (new_mean - self.mean) - increment  # what the addition rounded off
        self.mean = new_mean
        return self.mean

    def update_all(self, xs: Iterable[float | np.ndarray]) -> np.ndarray:
        for x in xs:
            self.update(x)
        if self.mean is None:
            raise ValueError("no samples given: the mean of nothing is undefined")
        return self.mean


@dataclass
class Trace:
    """Result of an iteration: final ``theta`` and the iterates at the steps ``ks`` (``thetas[i]`` after
    step ``ks[i]``)."""

    theta: np.ndarray
    ks: np.ndarray
    thetas: np.ndarray


def _record_set(record: Iterable[int] | None, steps: int) -> set[int]:
    return {int(k) for k in record if 1 <= k <= steps} if record is not None else set()


def robbins_monro(observe: Callable[[np.ndarray, int], np.ndarray], theta0: np.ndarray | float,
                  schedule: Schedule, steps: int, *, require_convergence: bool = True,
                  record: Iterable[int] | None = None) -> Trace:
    """Find the root of an increasing g from noisy observations: theta_k = theta_{k-1} - a_k Y_k.

    ``observe(theta, k)`` returns Y_k = g(theta) + noise with the shape of ``theta`` (any shape, e.g.
    (R, d) for R replicates). For a decreasing g negate the observations. ``require_convergence`` raises
    for schedules that break sum a_k = inf or sum a_k^2 < inf (see :func:`check_robbins_monro`).
    """
    if require_convergence:
        check_robbins_monro(schedule)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    theta = np.array(theta0, dtype=np.float64)
    wanted = _record_set(record, steps)
    ks, thetas = [], []
    for k in range(1, steps + 1):
        y = np.asarray(observe(theta, k), dtype=np.float64)
        if y.shape != theta.shape:
            raise ValueError(f"observe returned shape {y.shape} at step {k}; theta has shape {theta.shape}")
        theta -= schedule(k) * y
        if k in wanted:
            ks.append(k)
            thetas.append(theta.copy())
    return Trace(theta, np.array(ks), np.array(thetas))


def check_kiefer_wolfowitz(a: Schedule, c: Schedule) -> None:
    """KW (1952) needs a_k -> 0, c_k -> 0, sum a_k = inf, sum a_k c_k < inf (the finite differences' bias
    adds up to a finite amount) and sum (a_k / c_k)^2 < inf; raise naming what fails."""
    problems = []
    if not isinstance(a, Power) or not 0 < a.a <= 1:
        problems.append(f"steps a_k = {a} must decrease with sum a_k = inf (c/k^a with 0 < a <= 1)")
    if not isinstance(c, Power) or c.a <= 0:
        problems.append(f"probe widths c_k = {c} must shrink to 0 (c/k^g with g > 0)")
    elif isinstance(a, Power) and a.a - c.a <= 0.5:
        problems.append(f"sum (a_k/c_k)^2 = inf for a_k = {a}, c_k = {c}: need a - g > 1/2, "
                        "else the finite-difference noise (which grows like 1/c_k) never averages out")
    if isinstance(a, Power) and isinstance(c, Power) and c.a > 0 and a.a + c.a <= 1:
        problems.append(f"sum a_k c_k = inf for a_k = {a}, c_k = {c}: need a + g > 1, else the bias of the "
                        "finite differences (of order c_k) accumulates without bound")
    if problems:
        raise ValueError("Kiefer-Wolfowitz conditions broken: " + "; ".join(problems)
                         + ". Pass require_convergence=False to run it anyway.")


def kiefer_wolfowitz(f: Callable[[np.ndarray, int], np.ndarray], theta0: np.ndarray, a: Schedule,
                     c: Schedule, steps: int, *, require_convergence: bool = True,
                     record: Iterable[int] | None = None) -> Trace:
    """Minimise E[f] without gradients: central differences of noisy values along each coordinate.

    ``theta0`` has shape (..., d); ``f(theta, k)`` returns noisy values of shape (...). Each step costs
    2d evaluations: g_i = (f(theta + c_k e_i) - f(theta - c_k e_i)) / (2 c_k), then theta -= a_k g.
    """
    if require_convergence:
        check_kiefer_wolfowitz(a, c)
    theta0 = np.array(theta0, dtype=np.float64)
    if theta0.ndim == 0:
        raise ValueError("theta0 needs a last axis of coordinates (shape (..., d)); wrap a scalar as [x]")
    d = theta0.shape[-1]

    def gradient_estimate(theta: np.ndarray, k: int) -> np.ndarray:
        width = c(k)
        g = np.empty_like(theta)
        for i in range(d):
            step = np.zeros(d)
            step[i] = width
            g[..., i] = (np.asarray(f(theta + step, k)) - np.asarray(f(theta - step, k))) / (2 * width)
        return g

    # KW is Robbins-Monro on the root of grad E[f], observed through finite differences
    return robbins_monro(gradient_estimate, theta0, a, steps, require_convergence=False, record=record)


def sgd_as_robbins_monro(sample_gradient: Callable[[np.ndarray, int], np.ndarray], theta0: np.ndarray,
                         schedule: Schedule, steps: int, *, require_convergence: bool = True,
                         record: Iterable[int] | None = None) -> Trace:
    """SGD is Robbins-Monro on g(theta) = grad L(theta): a minibatch gradient is an unbiased noisy g.

    ``sample_gradient(theta, k)`` returns the gradient on the k-th minibatch; a_k is the learning rate.
    """
    return robbins_monro(sample_gradient, theta0, schedule, steps, require_convergence=require_convergence,
                         record=record)


def least_squares_sampler(x: np.ndarray, y: np.ndarray, batch_size: int,
                          rng: np.random.Generator) -> Callable[[np.ndarray, int], np.ndarray]:
    """Minibatch gradient of L(theta) = mean_i (x_i . theta - y_i)^2 / 2, for ``x`` (n, d), ``y`` (n,).

    Minibatches are drawn with replacement, so each one is an unbiased sample of grad L.
    """
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"expected x of shape (n, d) and y of shape (n,), got {x.shape} and {y.shape}")

    def sample(theta: np.ndarray, k: int) -> np.ndarray:
        idx = rng.integers(0, x.shape[0], size=batch_size)
        xb = x[idx]
        return xb.T @ (xb @ theta - y[idx]) / batch_size

    return sample
