"""Claim of topic ``stochastic_approx`` about cost: the non-incremental mean keeps every sample and
re-averages them (memory and time grow with n), the incremental recursion keeps two numbers."""

from __future__ import annotations

import statistics
import time
import tracemalloc

import numpy as np

from deepnotes.core.claims import ClaimContext, Outcome, claim
from deepnotes.core.notes import Source
from deepnotes.core.seed import seeded_generator
from deepnotes.core.verdict import Test
from deepnotes.optim.decay import loglog_slope
from deepnotes.optim.stochastic import IncrementalMean


class BatchMean:
    """The non-incremental method: collect every sample, average them all when an estimate is asked for."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def update(self, x: float) -> float:
        self.samples.append(float(x))
        return self.mean

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))


def held_bytes(make, xs: np.ndarray) -> int:
    """Bytes a mean estimator built by ``make()`` still holds after taking every value of ``xs`` (traced
    Python and numpy allocations; the input array itself is not counted). The non-incremental estimator
    is fed by ``append`` only (its averaging would cost O(n^2) here), which holds what it would."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        acc = make()
        feed = acc.samples.append if isinstance(acc, BatchMean) else acc.update
        for x in xs.tolist():
            feed(x)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def time_per_estimate(sizes: list[int], xs: np.ndarray, repeat: int) -> dict[str, list[float]]:
    """Seconds to produce the current estimate after sample k, for each k in ``sizes`` (median of
    ``repeat`` calls): the non-incremental method re-averages the k samples it holds, the incremental one
    applies one step of its recursion."""
    out: dict[str, list[float]] = {"non-incremental": [], "incremental": []}
    for k in sizes:
        held = xs[:k]
        acc = IncrementalMean()
        acc.update_all(xs[: min(k - 1, 10)])  # its state does not depend on k: a few samples suffice
        acc.count = k - 1
        for name, fn in (("non-incremental", lambda h=held: h.mean()),
                         ("incremental", lambda a=acc, x=float(xs[k - 1]): a.update(x))):
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter_ns()
                fn()
                times.append((time.perf_counter_ns() - t0) * 1e-9)
            out[name].append(statistics.median(times))
    return out


NOTE_BATCH = "非增量方法:先收集所有样本,然后计算平均值。缺点是如果样本数量很大,可能需要等待很长时间。"
BATCH_EN = ("Non-incremental method: first collect all samples, then compute the average. The drawback: if "
            "the number of samples is large, one may have to wait a long time.")


@claim(
    "stochastic_approx.batch_mean_cost", "stochastic_approx",
    "The non-incremental mean keeps every sample (memory grows linearly with n) and re-averages them for "
    "each estimate (time per estimate grows with n); the incremental recursion holds a constant state and "
    "updates in constant time.",
    tests=(
        Test("memory_batch", "log-log slope of the bytes the non-incremental method holds against n",
             ">", 0.9, method="exact"),
        Test("memory_incremental", "log-log slope of the bytes the incremental mean holds against n", "<",
             0.1, method="exact"),
        Test("time_slope", "log-log slope against n of the time per estimate, non-incremental minus "
             "incremental, per interleaved round", ">", 0.5),
    ),
    origin="note",
    source=Source("stochastic_approx", NOTE_BATCH, BATCH_EN),
)
def batch_mean_cost(ctx: ClaimContext) -> Outcome:
    top = ctx.pick(6, 7)
    mem_sizes = [10**e for e in range(3, ctx.pick(6, 7))]
    time_sizes = [int(10**e) for e in np.arange(4, top + 0.25, 0.5)]
    xs = seeded_generator(ctx.seed).normal(size=time_sizes[-1])
    held = {name: [held_bytes(make, xs[:n]) for n in mem_sizes]
            for name, make in (("non-incremental", BatchMean), ("incremental", IncrementalMean))}
    slopes = {name: loglog_slope(np.array(mem_sizes), np.array(b, dtype=float)) for name, b in held.items()}
    rounds, per_round, repeat = ctx.pick(5, 10), [], ctx.pick(15, 30)
    times: dict[str, list[list[float]]] = {"non-incremental": [], "incremental": []}
    for _ in range(rounds):  # each round times both methods at every n: one slope difference per round
        t = time_per_estimate(time_sizes, xs, repeat)
        for name in times:
            times[name].append(t[name])
        per_round.append(loglog_slope(np.array(time_sizes), np.array(t["non-incremental"]))
                         - loglog_slope(np.array(time_sizes), np.array(t["incremental"])))
    med = {name: [statistics.median(r[i] for r in v) for i in range(len(time_sizes))]
           for name, v in times.items()}
    rows = [{"n": n, **{f"{k} bytes": held[k][i] for k in held}} for i, n in enumerate(mem_sizes)]
    rows_t = [{"n": n, **{f"{k} us": round(1e6 * med[k][i], 3) for k in med}}
              for i, n in enumerate(time_sizes)]
    figures = {"memory_slope_non_incremental": slopes["non-incremental"],
               "memory_slope_incremental": slopes["incremental"],
               "bytes_per_sample_non_incremental": held["non-incremental"][-1] / mem_sizes[-1],
               "incremental_bytes_at_largest_n": float(held["incremental"][-1]),
               **{f"us_per_estimate_{k.replace('-', '_')}_at_{time_sizes[-1]}": 1e6 * v[-1]
                  for k, v in med.items()}}
    samples = {"memory_batch": slopes["non-incremental"], "memory_incremental": slopes["incremental"],
               "time_slope": per_round}
    return Outcome(figures, samples, tables={"bytes held": rows, "time per estimate (median)": rows_t},
                   notes=f"memory: tracemalloc, samples as Python floats in a list (deterministic: exact); "
                         f"time: median of {repeat} calls per n, {rounds} interleaved rounds, the "
                         "non-incremental estimate re-averaging a numpy array of the n samples (its fastest "
                         "form), the incremental one IncrementalMean.update (numpy scalars).")
