"""Claims of topic ``stochastic_approx``: incremental mean, Robbins-Monro convergence and its rate."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from deepnotes.core.claims import ClaimContext, Outcome, claim  # noqa: E402
from deepnotes.core.notes import Paper, Source  # noqa: E402
from deepnotes.core.seed import seeded_generator  # noqa: E402
from deepnotes.core.verdict import Test  # noqa: E402
from deepnotes.optim.decay import loglog_slope  # noqa: E402
from deepnotes.optim.schedule_sa import Constant, Power, Schedule  # noqa: E402
from deepnotes.optim.stochastic import IncrementalMean, kiefer_wolfowitz, robbins_monro  # noqa: E402

ROOT, NOISE = 2.0, 1.0  # g(theta) = theta - ROOT observed with N(0, NOISE^2) noise


NOTE_KEY = "stochastic_approx"
NOTE_INTRO = "随机逼近(Stochastic Approximation)是一类用于求解寻根或优化问题的随机迭代算法"
INTRO_EN = ("Stochastic approximation is a family of stochastic iterative algorithms for root-finding or "
            "optimisation problems")
ROBBINS_MONRO = "Robbins & Monro, A Stochastic Approximation Method, Ann. Math. Statist. 22(3), 1951"


def _rm_errors(schedule: Schedule, steps: int, replicates: int, seed: int, record: np.ndarray,
               blocks: int = 1) -> np.ndarray:
    """RMS error |theta_k - ROOT| at the steps in ``record``, starting from theta = 0: (blocks, len(record)),
    each row over its own ``replicates // blocks`` independent replicates (one repeat of the measurement)."""
    rng = seeded_generator(seed)
    trace = robbins_monro(lambda t, k: t - ROOT + NOISE * rng.standard_normal(t.shape), np.zeros(replicates),
                          schedule, steps, require_convergence=False, record=record)
    sq = (trace.thetas - ROOT) ** 2  # (len(record), replicates)
    return np.stack([np.sqrt(b.mean(axis=1)) for b in np.array_split(sq, blocks, axis=1)])


@claim(
    "stochastic_approx.incremental_mean_equals_batch", "stochastic_approx",
    "The incremental mean m_k = m_{k-1} + (x_k - m_{k-1})/k, kept in O(1) memory, equals the batch mean.",
    tests=(
        Test("float64", "relative difference of the float64 incremental mean to the batch mean", "<", 1e-12,
             method="exact"),
        Test("float32_compensated", "relative difference of the float32 incremental mean with compensated "
             "(Kahan) increments", "<", 1e-6, method="exact"),
    ),
    origin="note",
    source=Source(NOTE_KEY, "增量方法:定义 [公式] 可以推导出递归公式: [公式] 这个算法可以增量式地",
                  "Incremental method: define [formula]; a recursive formula can be derived: [formula]. This "
                  "algorithm can, incrementally, ..."),
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
    ax.set_xlabel("samples k")
    ax.set_ylabel("|incremental - batch| / batch")
    ax.set_title("Incremental mean against the batch mean")
    ax.legend(fontsize=8)
    ctx.save_plot(fig, "incremental_vs_batch")
    samples = {"float64": figures["rel_diff_float64"],
               "float32_compensated": figures["rel_diff_float32_compensated"]}
    return Outcome(figures, samples,
                   notes="Samples 1e3 + lognormal(0, 1); reference = batch mean in extended precision. The "
                         "plain float32 recursion (reported) loses increments below half an ulp.")


RM_SCHEDULES: dict[str, Schedule] = {"1/k": Power(1, 1), "1/k^0.7": Power(1, 0.7),
                                     "const 0.1": Constant(0.1), "const 0.02": Constant(0.02)}


@claim(
    "stochastic_approx.rm_converges_constant_stalls", "stochastic_approx",
    "With sum a_k = inf and sum a_k^2 < inf, Robbins-Monro converges on noisy observations; a constant step "
    "stalls at a noise floor.",
    tests=(
        Test("slope_1/k", "fitted log-log slope of the RMS error over the last decade of steps, a_k = 1/k",
             "<", -0.1),
        Test("slope_1/k^0.7", "the same slope, a_k = 1/k^0.7", "<", -0.1),
        Test("slope_const_0.1", "the same slope, constant a = 0.1 (stalled: no decay)", ">", -0.1),
        Test("slope_const_0.02", "the same slope, constant a = 0.02", ">", -0.1),
    ),
    origin="paper",
    source=Source(NOTE_KEY, NOTE_INTRO, INTRO_EN + ". (The excerpt stops before the step-size conditions.)"),
    paper=Paper(ROBBINS_MONRO, "Theorem: with sum a_n = inf and sum a_n^2 < inf the iterate converges to the "
                "root in mean square (a theorem, no figure); a constant step leaves a stationary error",
                "root of an increasing regression function observed with bounded-variance noise"),
)
def rm_converges(ctx: ClaimContext) -> Outcome:
    steps, reps, blocks = ctx.pick(20_000, 200_000), ctx.pick(400, 2000), ctx.pick(5, 10)
    record = np.unique(np.logspace(0, np.log10(steps), 60).astype(int))
    last = record >= steps // 10  # the last decade: far past the transient of every schedule
    figures: dict[str, float] = {}
    samples = ctx.collector()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (name, sched) in enumerate(RM_SCHEDULES.items()):
        err = _rm_errors(sched, steps, reps, 1000 * ctx.seed + i, record, blocks)
        samples[f"slope_{name.replace(' ', '_')}"] = [loglog_slope(record[last], e[last]) for e in err]
        mean = np.sqrt((err**2).mean(axis=0))
        figures[f"rms_error_last[{name}]"] = float(mean[-1])
        ax.loglog(record, mean, label=name)
        if isinstance(sched, Constant):
            floor = float(np.sqrt(sched.c / (2 - sched.c)))
            figures[f"predicted_floor[{name}]"] = floor
            figures[f"last_over_predicted_floor[{name}]"] = float(mean[-1] / floor)
            ax.axhline(floor, color=ax.lines[-1].get_color(), ls=":", lw=1)
    ax.set_xlabel("step k")
    ax.set_ylabel("RMS error |theta_k - theta*|")
    ax.set_title("Robbins-Monro: decreasing vs constant steps (dotted: predicted floors)")
    ax.legend()
    ctx.save_plot(fig, "rm_schedules")
    return Outcome(figures, samples,
                   notes=f"{reps} replicates in {blocks} independent blocks (the repeats), {steps} steps, "
                         "start at 0; slopes fitted over the last decade of steps. Theory: -0.5 for 1/k, "
                         "-0.35 for 1/k^0.7, 0 for a constant step (floor sqrt(a / (2 - a))); the bound -0.1 "
                         "lies well between.")


@claim(
    "stochastic_approx.error_rate_k_minus_half", "stochastic_approx",
    "The Robbins-Monro error decays like k^-1/2.",
    tests=(
        Test("slope_low", "fitted log-log slope of the RMS error of RM with a_k = 1/k (c g' = 1 > 1/2) "
             "over the second half of the decades", ">", -0.6),
        Test("slope_high", "the same slope", "<", -0.4),
    ),
    origin="paper",
    source=Source(NOTE_KEY, NOTE_INTRO, INTRO_EN + ". (The excerpt does not reach the convergence rate.)"),
    paper=Paper("Chung, On a Stochastic Approximation Method, Ann. Math. Statist. 25(3), 1954; Sacks, "
                "Asymptotic Distribution of Stochastic Approximation Procedures, Ann. Math. Statist. 29(2), "
                "1958", "theorem: with a_k = c/k and c g'(theta*) > 1/2, sqrt(k) (theta_k - theta*) is "
                "asymptotically normal, so the RMS error falls like k^-1/2",
                "scalar root finding, noise of finite variance"),
)
def error_rate(ctx: ClaimContext) -> Outcome:
    steps, reps, blocks = ctx.pick(20_000, 200_000), ctx.pick(400, 2000), ctx.pick(5, 10)
    record = np.unique(np.logspace(0, np.log10(steps), 60).astype(int))
    fit = record >= np.sqrt(steps)  # the asymptotic regime: the later half of the decades
    figures: dict[str, float] = {}
    samples = ctx.collector()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (name, sched) in enumerate({"1/k": Power(1, 1), "0.25/k": Power(0.25, 1),
                                       "1/k^0.7": Power(1, 0.7)}.items()):
        err = _rm_errors(sched, steps, reps, 1000 * ctx.seed + 10 + i, record, blocks)
        slopes = [loglog_slope(record[fit], e[fit]) for e in err]
        if name == "1/k":
            samples["slope_low"] = samples["slope_high"] = slopes
        figures[f"slope[{name}]"] = float(np.mean(slopes))
        ax.loglog(record, np.sqrt((err**2).mean(axis=0)), label=f"RM {name}: slope {np.mean(slopes):.2f}")
    figures["slope[Kiefer-Wolfowitz]"] = _kiefer_wolfowitz(ctx, reps, ax)
    ax.loglog(record, NOISE / np.sqrt(record), "k:", label="sigma / sqrt(k)")
    ax.set_xlabel("step k")
    ax.set_ylabel("RMS error")
    ax.set_title("Convergence rates")
    ax.legend(fontsize=8)
    ctx.save_plot(fig, "rates")
    return Outcome(figures, samples,
                   notes=f"{reps} replicates in {blocks} independent blocks (the repeats); slopes fitted for "
                         "k >= sqrt(steps). Reported alongside (predicted slopes): 0.25/k (c g' < 1/2: "
                         "-0.25), 1/k^0.7 (-0.35), Kiefer-Wolfowitz with c_k = k^-1/6 (-1/3).")


def _kiefer_wolfowitz(ctx: ClaimContext, reps: int, ax) -> float:
    """Fitted slope of Kiefer-Wolfowitz's RMS error (a_k = 0.5/k, c_k = k^-1/6), drawn on ``ax``."""
    rng = seeded_generator(1000 * ctx.seed + 20)
    kw_steps = ctx.pick(5_000, 50_000)
    kw_record = np.unique(np.logspace(0, np.log10(kw_steps), 40).astype(int))
    trace = kiefer_wolfowitz(
        lambda t, k: ((t - ROOT) ** 2).sum(-1) + NOISE * rng.standard_normal(t.shape[:-1]),
        np.zeros((reps, 1)), Power(0.5, 1), Power(1, 1 / 6), kw_steps, record=kw_record)
    kw_err = np.sqrt(((trace.thetas[..., 0] - ROOT) ** 2).mean(axis=1))
    kw_fit = kw_record >= np.sqrt(kw_steps)
    slope = loglog_slope(kw_record[kw_fit], kw_err[kw_fit])
    ax.loglog(kw_record, kw_err, label=f"KW 0.5/k, c_k=k^-1/6: slope {slope:.2f}")
    return slope
