"""Claims of topic ``stochastic_approx``: incremental mean, Robbins-Monro convergence and its rate."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from deepnotes.core.claims import ClaimContext, Outcome, claim  # noqa: E402
from deepnotes.core.seed import seeded_generator  # noqa: E402
from deepnotes.optim.decay import loglog_slope  # noqa: E402
from deepnotes.optim.schedule_sa import Constant, Power, Schedule  # noqa: E402
from deepnotes.optim.stochastic import IncrementalMean, kiefer_wolfowitz, robbins_monro  # noqa: E402

ROOT, NOISE = 2.0, 1.0  # g(theta) = theta - ROOT observed with N(0, NOISE^2) noise


def _rm_errors(schedule: Schedule, steps: int, replicates: int, seed: int, record: np.ndarray) -> np.ndarray:
    """RMS error |theta_k - ROOT| over replicates at the steps in ``record``, starting from theta = 0."""
    rng = seeded_generator(seed)
    trace = robbins_monro(lambda t, k: t - ROOT + NOISE * rng.standard_normal(t.shape), np.zeros(replicates),
                          schedule, steps, require_convergence=False, record=record)
    return np.sqrt(((trace.thetas - ROOT) ** 2).mean(axis=1))


@claim(
    id="stochastic_approx.incremental_mean_equals_batch",
    topic="stochastic_approx",
    statement="The incremental mean m_k = m_{k-1} + (x_k - m_{k-1})/k, kept in O(1) memory, equals the "
              "batch mean.",
    condition="Relative difference to the float64 batch mean below 1e-12 for the float64 incremental mean "
              "and below 1e-6 for the float32 one with compensated (Kahan) increments, on samples "
              "1e3 + lognormal. The plain float32 recursion is reported too: it loses increments below half "
              "an ulp.",
)
def incremental_mean(ctx: ClaimContext) -> Outcome:
    n = ctx.pick(100_000, 2_000_000)
    xs = 1e3 + seeded_generator(ctx.seed).lognormal(0.0, 1.0, size=n)
    checkpoints = np.unique(np.logspace(0, np.log10(n), 80).astype(int))
    # reference batch means of the first k samples, accumulated in extended precision
    exact = np.cumsum(xs.astype(np.longdouble))[checkpoints - 1] / checkpoints
    figures: dict[str, float] = {}
    fig, ax = plt.subplots(figsize=(5.8, 4))
    for dtype, compensated, name in ((np.float64, False, "float64"), (np.float32, False, "float32"),
                                     (np.float32, True, "float32_compensated")):
        acc, curve, j = IncrementalMean(dtype, compensated=compensated), [], 0
        for i, x in enumerate(xs.astype(dtype), start=1):
            acc.update(x)
            if i == checkpoints[j]:
                curve.append(float(acc.mean))
                j += 1
        rel = np.abs(np.array(curve, dtype=np.longdouble) - exact) / exact
        figures[f"rel_diff_{name}"] = float(rel[-1])
        ax.loglog(checkpoints, np.maximum(rel.astype(np.float64), 1e-18), label=name.replace("_", " "))
    for eps, dt in ((np.finfo(np.float64).eps, "float64"), (np.finfo(np.float32).eps, "float32")):
        ax.axhline(eps, color="gray", ls=":", lw=1)
        ax.text(1.5, eps * 1.5, f"{dt} eps", fontsize=7, color="gray")
    figures["samples"] = float(n)
    held = figures["rel_diff_float64"] < 1e-12 and figures["rel_diff_float32_compensated"] < 1e-6
    ax.set_xlabel("samples k")
    ax.set_ylabel("|incremental - batch| / batch")
    ax.set_title("Incremental mean against the batch mean")
    ax.legend(fontsize=8)
    ctx.save_plot(fig, "incremental_vs_batch")
    return Outcome(figures=figures, held=held,
                   notes="Samples 1e3 + lognormal(0, 1); reference = batch mean in extended precision.")


@claim(
    id="stochastic_approx.rm_converges_constant_stalls",
    topic="stochastic_approx",
    statement="With sum a_k = inf and sum a_k^2 < inf, Robbins-Monro converges on noisy observations; a "
              "constant step stalls at a noise floor.",
    condition="Root of g(t) = t - 2 under N(0,1) noise, RMS error over replicates: for 1/k and 1/k^0.7 the "
              "error at the last step is < 1/5 of the error at 1/100 of the steps; for constant a in "
              "{0.1, 0.02} the last error is within 25% of the predicted floor sqrt(a / (2 - a)) and > 1/2 "
              "of the error at 1/10 of the steps.",
)
def rm_converges(ctx: ClaimContext) -> Outcome:
    steps, reps = ctx.pick(20_000, 200_000), ctx.pick(400, 2000)
    record = np.unique(np.logspace(0, np.log10(steps), 60).astype(int))
    schedules: dict[str, Schedule] = {"1/k": Power(1, 1), "1/k^0.7": Power(1, 0.7),
                                      "const 0.1": Constant(0.1), "const 0.02": Constant(0.02)}
    figures: dict[str, float] = {}
    held = True
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (name, sched) in enumerate(schedules.items()):
        err = _rm_errors(sched, steps, reps, ctx.seed + i, record)
        at = {frac: err[np.searchsorted(record, max(1, steps // frac))] for frac in (100, 10)}
        figures[f"rms_error_last[{name}]"] = float(err[-1])
        ax.loglog(record, err, label=name)
        if isinstance(sched, Constant):
            floor = float(np.sqrt(sched.c / (2 - sched.c)))
            figures[f"predicted_floor[{name}]"] = floor
            held &= abs(err[-1] / floor - 1) < 0.25 and err[-1] > 0.5 * at[10]
            ax.axhline(floor, color=ax.lines[-1].get_color(), ls=":", lw=1)
        else:
            figures[f"shrink_over_last_99pct[{name}]"] = float(err[-1] / at[100])
            held &= err[-1] < at[100] / 5
    ax.set_xlabel("step k")
    ax.set_ylabel("RMS error |theta_k - theta*|")
    ax.set_title("Robbins-Monro: decreasing vs constant steps (dotted: predicted floors)")
    ax.legend()
    ctx.save_plot(fig, "rm_schedules")
    return Outcome(figures=figures, held=bool(held), notes=f"{reps} replicates, {steps} steps, start at 0.")


@claim(
    id="stochastic_approx.error_rate_k_minus_half",
    topic="stochastic_approx",
    statement="The Robbins-Monro error decays like k^-1/2.",
    condition="a_k = 1/k on g(t) = t - 2 (slope 1, so c*g' = 1 > 1/2): fitted log-log slope of RMS error vs "
              "k over the second half of the decades within [-0.6, -0.4]. Reported alongside: c = 0.25 "
              "(c*g' < 1/2, predicted slope -0.25), 1/k^0.7 (predicted -0.35) and Kiefer-Wolfowitz "
              "(predicted -1/3).",
)
def error_rate(ctx: ClaimContext) -> Outcome:
    steps, reps = ctx.pick(20_000, 200_000), ctx.pick(400, 2000)
    record = np.unique(np.logspace(0, np.log10(steps), 60).astype(int))
    fit = record >= np.sqrt(steps)  # the asymptotic regime: the later half of the decades
    figures: dict[str, float] = {}
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (name, sched) in enumerate({"1/k": Power(1, 1), "0.25/k": Power(0.25, 1),
                                       "1/k^0.7": Power(1, 0.7)}.items()):
        err = _rm_errors(sched, steps, reps, ctx.seed + 10 + i, record)
        figures[f"slope[{name}]"] = loglog_slope(record[fit], err[fit])
        ax.loglog(record, err, label=f"RM {name}: slope {figures[f'slope[{name}]']:.2f}")

    rng = seeded_generator(ctx.seed + 20)
    kw_steps = ctx.pick(5_000, 50_000)
    kw_record = np.unique(np.logspace(0, np.log10(kw_steps), 40).astype(int))
    trace = kiefer_wolfowitz(
        lambda t, k: ((t - ROOT) ** 2).sum(-1) + NOISE * rng.standard_normal(t.shape[:-1]),
        np.zeros((reps, 1)), Power(0.5, 1), Power(1, 1 / 6), kw_steps, record=kw_record)
    kw_err = np.sqrt(((trace.thetas[..., 0] - ROOT) ** 2).mean(axis=1))
    kw_fit = kw_record >= np.sqrt(kw_steps)
    figures["slope[Kiefer-Wolfowitz]"] = loglog_slope(kw_record[kw_fit], kw_err[kw_fit])
    kw_slope = figures["slope[Kiefer-Wolfowitz]"]
    ax.loglog(kw_record, kw_err, label=f"KW 0.5/k, c_k=k^-1/6: slope {kw_slope:.2f}")
    ax.loglog(record, NOISE / np.sqrt(record), "k:", label="sigma / sqrt(k)")
    ax.set_xlabel("step k")
    ax.set_ylabel("RMS error")
    ax.set_title("Convergence rates")
    ax.legend(fontsize=8)
    ctx.save_plot(fig, "rates")
    held = -0.6 <= figures["slope[1/k]"] <= -0.4
    return Outcome(figures=figures, held=held,
                   notes=f"{reps} replicates; slopes fitted for k >= sqrt(steps).")
