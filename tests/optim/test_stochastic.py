"""Stochastic approximation against closed-form answers and torch.optim.SGD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deepnotes.optim.schedule_sa import Constant, Power, check_robbins_monro, harmonic, parse_schedule
from deepnotes.optim.stochastic import (
    IncrementalMean,
    kiefer_wolfowitz,
    least_squares_sampler,
    robbins_monro,
    sgd_as_robbins_monro,
)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.integers(1, 300), elements=st.floats(-1e6, 1e6)))
def test_incremental_mean_equals_batch_mean(xs):
    mean = IncrementalMean().update_all(xs)
    assert abs(mean - xs.mean()) <= 1e-9 * max(1.0, np.abs(xs).max())


def test_incremental_mean_of_vectors_and_shape_errors():
    xs = np.random.default_rng(0).normal(size=(1000, 3))
    acc = IncrementalMean()
    np.testing.assert_allclose(acc.update_all(xs), xs.mean(axis=0), rtol=1e-12)
    assert acc.count == 1000
    with pytest.raises(ValueError, match="sample 1001 has shape"):
        acc.update(np.zeros(2))
    with pytest.raises(ValueError, match="no samples"):
        IncrementalMean().update_all([])


def test_incremental_mean_is_robbins_monro_with_one_over_k():
    xs = np.random.default_rng(1).exponential(size=500)
    trace = robbins_monro(lambda m, k: m - xs[k - 1], 0.0, harmonic(), len(xs))
    assert trace.theta == pytest.approx(xs.mean(), rel=1e-12)


@pytest.mark.parametrize("schedule", [Power(1.0, 0.5), Power(1.0, 0.3), Power(1.0, 1.5), Constant(0.1)])
def test_schedules_breaking_the_conditions_are_refused(schedule):
    with pytest.raises(ValueError, match="Robbins-Monro conditions"):
        robbins_monro(lambda t, k: t, 1.0, schedule, 10)
    robbins_monro(lambda t, k: t, 1.0, schedule, 10, require_convergence=False)  # allowed when asked


@pytest.mark.parametrize("schedule", [harmonic(), Power(2.0, 0.7), Power(0.1, 0.51)])
def test_valid_schedules_pass(schedule):
    check_robbins_monro(schedule)


def test_schedule_arguments_and_parsing():
    with pytest.raises(ValueError, match="c > 0"):
        Power(0.0, 1.0)
    with pytest.raises(ValueError, match="a >= 0"):
        Power(1.0, -0.5)
    assert parse_schedule("1/k") == Power(1.0, 1.0)
    assert parse_schedule("0.5/k^0.7") == Power(0.5, 0.7)
    assert parse_schedule("const:0.1") == Constant(0.1)
    with pytest.raises(ValueError, match="expected e.g."):
        parse_schedule("k^2")


def test_robbins_monro_converges_and_constant_step_stalls_at_its_noise_floor():
    """Root of g(t) = t - 2 seen through unit Gaussian noise, 400 replicates at once."""
    rng = np.random.default_rng(2)

    def observe(t, k):
        return t - 2.0 + rng.standard_normal(t.shape)

    decreasing = robbins_monro(observe, np.zeros(400), Power(1.0, 0.8), 4000)
    assert np.sqrt(np.mean((decreasing.theta - 2) ** 2)) < 0.05
    a = 0.2  # stationary variance of t_k = (1 - a) t_{k-1} - a eps is a / (2 - a)
    constant = robbins_monro(observe, np.zeros(400), Constant(a), 4000, require_convergence=False)
    assert np.mean((constant.theta - 2) ** 2) == pytest.approx(a / (2 - a), rel=0.2)


def test_record_keeps_the_requested_iterates():
    trace = robbins_monro(lambda t, k: t - 1.0, np.zeros(2), harmonic(), 10, record=[1, 5, 10, 99])
    assert list(trace.ks) == [1, 5, 10]
    np.testing.assert_allclose(trace.thetas[0], [1.0, 1.0])  # a_1 = 1 jumps straight to the root
    with pytest.raises(ValueError, match="shape"):
        robbins_monro(lambda t, k: np.zeros(3), np.zeros(2), harmonic(), 5)


def test_kiefer_wolfowitz_minimises_without_gradients():
    rng = np.random.default_rng(3)
    target = np.array([1.0, -2.0])

    def f(t, k):
        return ((t - target) ** 2).sum(-1) + 0.5 * rng.standard_normal(t.shape[:-1])

    trace = kiefer_wolfowitz(f, np.zeros((200, 2)), Power(0.5, 1.0), Power(1.0, 1 / 6), 3000)
    assert np.sqrt(((trace.theta - target) ** 2).sum(-1).mean()) < 0.1


def test_kiefer_wolfowitz_conditions():
    with pytest.raises(ValueError, match=r"sum \(a_k/c_k\)\^2 = inf"):
        kiefer_wolfowitz(lambda t, k: t.sum(-1), np.zeros(1), Power(1.0, 1.0), Power(1.0, 0.6), 5)
    with pytest.raises(ValueError, match="shrink to 0"):
        kiefer_wolfowitz(lambda t, k: t.sum(-1), np.zeros(1), Power(1.0, 1.0), Constant(0.1), 5)
    # a - g = 0.7 > 1/2 but a + g = 0.9 <= 1: the 1952 bias condition sum a_k c_k < inf fails
    with pytest.raises(ValueError, match=r"sum a_k c_k = inf .*need a \+ g > 1"):
        kiefer_wolfowitz(lambda t, k: t.sum(-1), np.zeros(1), Power(1.0, 0.8), Power(1.0, 0.1), 5)


def test_sgd_as_robbins_monro_equals_torch_sgd_and_finds_least_squares():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([0.5, -1.0, 2.0]) + 0.1 * rng.normal(size=200)
    schedule = Power(0.5, 0.75)
    steps = 1500
    ours = sgd_as_robbins_monro(least_squares_sampler(x, y, 16, np.random.default_rng(5)), np.zeros(3),
                                schedule, steps)

    # torch.optim.SGD on the same minibatches with lr_k = a_k
    batches = np.random.default_rng(5)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=1.0)
    for k in range(1, steps + 1):
        idx = batches.integers(0, 200, size=16)
        xb, yb = torch.from_numpy(x[idx]), torch.from_numpy(y[idx])
        opt.zero_grad()
        (0.5 * ((xb @ w - yb) ** 2).mean()).backward()
        opt.param_groups[0]["lr"] = schedule(k)
        opt.step()
    np.testing.assert_allclose(ours.theta, w.detach().numpy(), rtol=1e-9)
    np.testing.assert_allclose(ours.theta, np.linalg.lstsq(x, y, rcond=None)[0], atol=0.03)


def test_compensated_float32_mean_keeps_float_precision_where_plain_drifts():
    xs = (1e3 + np.random.default_rng(6).lognormal(0.0, 1.0, size=20_000)).astype(np.float32)
    batch = xs.astype(np.float64).mean()
    plain = float(IncrementalMean(np.float32).update_all(xs))
    compensated = float(IncrementalMean(np.float32, compensated=True).update_all(xs))
    assert abs(compensated - batch) / batch < 1e-6
    assert abs(plain - batch) > 10 * abs(compensated - batch)  # the rounding loss the compensation removes

