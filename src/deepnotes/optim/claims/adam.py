"""Claims of topic ``optim``: where weight decay goes in Adam vs AdamW, and what that does on a real task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepnotes.core.claims import ClaimContext, Outcome, claim  # noqa: E402
from deepnotes.core.notes import Paper, Source  # noqa: E402
from deepnotes.core.verdict import Test  # noqa: E402
from deepnotes.optim.decay import effective_decay, loglog_slope  # noqa: E402
from deepnotes.optim.digits_grid import Grid, optimum_coupling, plot_grid, sweep  # noqa: E402


@contextmanager
def _one_thread() -> Iterator[None]:
    """These experiments are many tiny ops; on a shared CPU, OpenMP threads waiting on each other cost far
    more (measured 30x on 2 busy cores) than they gain: run them on one thread, then restore the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


NOTE_TLDR = ("TLDR:AdamW将优化过程中使用的针对网络权重的衰减项(或者叫正则项)从loss中单独拿了出来,"
             "不参与Adam中一二阶动量的计算。")
TLDR_EN = ("TL;DR: AdamW takes the decay term on the weights (the regulariser) out of the loss, so that it "
           "does not take part in the computation of Adam's first and second moments.")
ADAMW_PAPER = "Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019 (arXiv:1711.05101)"


@claim(
    "optim.adam_l2_decay_divided_by_sqrt_v", "optim",
    "Under Adam with L2 weight decay the decay a weight receives is divided by sqrt(v): weights with large "
    "gradient variance are decayed far less than under AdamW, whose decay is uniform.",
    tests=(
        Test("slope_adam_low", "log-log slope of Adam+L2's effective decay kappa against gradient std sigma",
             ">", -1.2),
        Test("slope_adam_high", "the same slope (Adam+L2; 1/sqrt(v) ~ 1/sigma predicts -1)", "<", -0.8),
        Test("slope_adamw_low", "log-log slope of AdamW's kappa against sigma (uniform decay predicts 0)",
             ">", -0.1),
        Test("slope_adamw_high", "the same slope (AdamW)", "<", 0.1),
        Test("kappa_sqrt_v", "max over sigma of |kappa_Adam * sqrt(v_hat) - 1|", "<", 0.25),
        Test("ratio_at_max_sigma", "kappa_Adam / kappa_AdamW at the largest sigma (30)", "<", 0.1,
             scale="log"),
    ),
    origin="note",
    source=Source("adamw", NOTE_TLDR, TLDR_EN),
    paper=Paper(ADAMW_PAPER, "Sec. 2: with L2 regularisation in Adam, weights with large historic gradients "
                "are regularised less than with decoupled weight decay (an analytic argument, no figure)",
                "adaptive gradient methods, any model"),
)
def adam_l2_decay(ctx: ClaimContext) -> Outcome:
    sigmas = np.logspace(-0.5, 1.5, 9)
    runs = []
    with _one_thread():  # each repeat: fresh noise for every weight (an independent seed)
        for seed in ctx.seeds(ctx.pick(5, 10)):
            runs.append(effective_decay(sigmas, steps=ctx.pick(300, 1000), replicates=ctx.pick(400, 2000),
                                        seed=seed))
    samples = ctx.collector()
    for res in runs:
        adam, adamw = res.kappa["Adam"], res.kappa["AdamW"]
        # a non-positive effective decay has no logarithm: NaN makes the tests inconclusive, not a crash
        slope_adam = loglog_slope(sigmas, adam) if np.all(adam > 0) else float("nan")
        slope_adamw = loglog_slope(sigmas, adamw) if np.all(adamw > 0) else float("nan")
        for name, v in (("slope_adam_low", slope_adam), ("slope_adam_high", slope_adam),
                        ("slope_adamw_low", slope_adamw), ("slope_adamw_high", slope_adamw),
                        ("kappa_sqrt_v", float(np.abs(adam * res.rms_v["Adam"] - 1).max())),
                        ("ratio_at_max_sigma", float(adam[-1] / adamw[-1]))):
            samples[name].append(v)
    adam = np.mean([r.kappa["Adam"] for r in runs], axis=0)
    adamw = np.mean([r.kappa["AdamW"] for r in runs], axis=0)
    root_v = np.mean([r.rms_v["Adam"] for r in runs], axis=0)
    _decay_plot(ctx, sigmas, adam, adamw, root_v)
    rows = [{"sigma": round(float(s), 3), "kappa_adam": round(float(a), 4), "kappa_adamw": round(float(w), 4),
             "kappa_adam_x_sqrt_v": round(float(a * r), 3)}
            for s, a, w, r in zip(sigmas, adam, adamw, root_v, strict=True)]
    figures = {"slope_adam_mean": float(np.mean(samples["slope_adam_low"])),
               "slope_adamw_mean": float(np.mean(samples["slope_adamw_low"])),
               "kappa_adam_at_max_sigma": float(adam[-1]), "kappa_adamw_at_max_sigma": float(adamw[-1])}
    return Outcome(figures, samples, tables={"effective decay by gradient noise (mean over repeats)": rows},
                   notes=f"lr 1e-2, lambda 0.05, pure-noise gradients, weights start at 1; each sigma runs "
                         f"with and without decay on the same noise; {len(runs)} independent repeats of "
                         f"{ctx.pick(400, 2000)} weights per sigma.")


def _decay_plot(ctx: ClaimContext, sigmas: np.ndarray, adam: np.ndarray, adamw: np.ndarray,
                root_v: np.ndarray) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.loglog(sigmas, adam, "o-", label=f"Adam + L2 (slope {loglog_slope(sigmas, np.abs(adam)):.2f})")
    ax.loglog(sigmas, adamw, "s-", label=f"AdamW (slope {loglog_slope(sigmas, np.abs(adamw)):.2f})")
    ax.loglog(sigmas, 1 / root_v, "k:", label="1 / sqrt(v_hat) measured")
    ax.set_xlabel("gradient noise std sigma")
    ax.set_ylabel("effective decay / (lr * lambda)")
    ax.set_title("Decay actually applied to a weight")
    ax.legend()
    ctx.save_plot(fig, "effective_decay")


@claim(
    "optim.adamw_grid_less_coupled", "optim",
    "On scikit-learn's digits with a small CNN, AdamW's best weight decay moves less with the learning rate "
    "than Adam+L2's (the AdamW paper's lr x decay grid, reduced).",
    tests=Test("coupling_gap", "|slope of log10(best decay) vs log10(lr)| of Adam+L2 minus that of AdamW, "
               "paired by training seed", ">", 0.0),
    origin="paper",
    source=Source("adamw", NOTE_TLDR, TLDR_EN + " (The note does not show the grid; the AdamW paper does.)"),
    paper=Paper(ADAMW_PAPER, "Fig. 2: top-1 test error over the (learning rate, weight decay) grid: Adam's "
                "good region runs along a diagonal (the best decay moves with the lr), AdamW's is nearly "
                "axis-aligned (decoupled)", "26 2x64d ResNet on CIFAR-10, 100 epochs"),
)
def adamw_grid(ctx: ClaimContext) -> Outcome:
    n = ctx.pick(4, 6)
    lrs = np.logspace(-2.5, -1, n)
    decays = {"Adam": np.logspace(-5, -2, n), "AdamW": np.logspace(-4, -1.5, n)}
    grids = []
    with _one_thread():  # one grid per training seed; the train/validation split is fixed by --seed
        for seed in ctx.seeds(ctx.pick(3, 5)):
            grids.append(sweep(lrs, decays, epochs=ctx.pick(8, 30), seeds=[seed], device=ctx.device,
                               data_seed=ctx.seed))
    slopes = {name: [optimum_coupling(g, name)[0] for g in grids] for name in decays}
    gap = [abs(a) - abs(w) for a, w in zip(slopes["Adam"], slopes["AdamW"], strict=True)]
    mean = Grid(lrs, decays, {name: np.mean([g.acc[name] for g in grids], axis=0) for name in decays})
    figures: dict[str, float] = {}
    for name in ("Adam", "AdamW"):
        figures[f"best_val_acc_{name.lower()}"] = float(mean.acc[name].max())
        figures[f"coupling_slope_{name.lower()}_mean"] = float(np.mean(slopes[name]))
    ctx.save_plot(plot_grid(mean), "lr_decay_grid")
    rows = [{"optimizer": name, "lr": f"{lr:.1e}",
             **{f"{d:.0e}": round(float(a) * 100, 1)
                for d, a in zip(decays[name], mean.acc[name][i], strict=True)}}
            for name in decays for i, lr in enumerate(lrs)]
    seeds = [{"seed": i, "slope Adam+L2": round(a, 3), "slope AdamW": round(w, 3)}
             for i, (a, w) in enumerate(zip(slopes["Adam"], slopes["AdamW"], strict=True))]
    return Outcome(figures, gap,
                   tables={"validation accuracy % (rows lr, columns decay; mean over seeds)": rows,
                           "coupling slope per training seed": seeds},
                   notes=f"{ctx.pick(8, 30)} epochs, cosine schedule with one warm-up epoch, batch 64, "
                         f"{len(grids)} training seeds (one grid each); 30% of digits held out for "
                         "validation.")
