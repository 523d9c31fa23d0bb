"""Claims 1-2 of the video topic (action recognition): frame order needs temporal modelling, and what
it costs in 2D and in 3D. Both read the runs trained once per report (see :mod:`.common`)."""

from __future__ import annotations

import numpy as np
import torch

from deepnotes.core import Outcome, claim
from deepnotes.video.claims.common import setup_of, top1
from deepnotes.video.experiments import costs, reference
from deepnotes.video.models import MODELS

# the models the claims train: TSN (the 2D baseline, blind to order) and every temporal 2D and 3D model of
# the registry; 3D variants (``variant=True``) are costed, not trained
TEMPORAL_2D = tuple(MODELS.names(family="2d", temporal=True))
ALL = ("tsn", *TEMPORAL_2D, *MODELS.names(family="3d", variant=False))
VARIANTS_3D = tuple(MODELS.names(family="3d", variant=True))


def _bar(ctx, rows, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    models = [r["model"] for r in rows]
    x = np.arange(len(models))
    ax.bar(x - 0.2, [r["motion_top1"] for r in rows], 0.4, label="motion (order only)")
    ax.bar(x + 0.2, [r["scene_top1"] if r["scene_top1"] is not None else 0 for r in rows], 0.4, label="scene")
    ax.axhline(0.5, ls="--", c="gray", lw=1, label="pair-confusion ceiling")
    ax.set_xticks(x, models)
    ax.set_ylabel("val top-1")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="lower right")
    ctx.save_plot(fig, name)


@claim("video.order_needs_temporal_modeling", "video",
       "Average consensus over frames (TSN) is blind to order: on data whose classes differ only in temporal "
       "order it stays at the pair-confusion ceiling, while TSM/TEA/STM/TDN/TAM and 3D networks learn the "
       "order; on appearance-only data TSN is as good as the temporal models.",
       "motion: TSN top-1 <= 0.60 (ceiling 0.50) and every temporal and 3D model >= 0.80; "
       "scene: TSN top-1 >= best temporal model - 0.05")
def order_needs_temporal_modeling(ctx) -> Outcome:
    scene_models = ctx.pick(("tsn", "tsm"), ALL)
    rows = []
    for m in ALL:
        rows.append({"model": m, "motion_top1": top1(ctx, "motion", m),
                     "scene_top1": top1(ctx, "scene", m) if m in scene_models else None})
    by = {r["model"]: r for r in rows}
    others_motion = [by[m]["motion_top1"] for m in ALL if m != "tsn"]
    best_scene_other = max(by[m]["scene_top1"] for m in scene_models if m != "tsn")
    held = (by["tsn"]["motion_top1"] <= 0.60 and min(others_motion) >= 0.80
            and by["tsn"]["scene_top1"] >= best_scene_other - 0.05)
    _bar(ctx, rows, "top1")
    figures = {f"motion_top1_{r['model']}": r["motion_top1"] for r in rows}
    figures.update({f"scene_top1_{m}": by[m]["scene_top1"] for m in scene_models})
    s = setup_of(ctx)
    notes = (f"Synthetic data, {s.n_per_class} training / {s.val_per_class} validation videos per class, "
             f"{s.frames} frames of {s.size}x{s.size}; clips of {s.segments} TSN segments; ResNet-{s.depth} "
             f"width {s.width} (2D and inflated 3D), {s.epochs} epochs AdamW; last-epoch top-1, centre view.")
    return Outcome(figures, held, tables={"val top-1 per model": rows}, notes=notes)


@claim("video.cost_2d_vs_3d", "video",
       "2D temporal modules add little to TSN's cost, while 3D networks are heavy: more parameters, more "
       "FLOPs, slower inference at equal input.",
       "at the larger input: every 2D temporal model within 1.3x TSN's FLOPs, and I3D and R(2+1)D each above "
       "1.5x TSN's FLOPs and CPU latency")
def cost_2d_vs_3d(ctx) -> Outcome:
    setup = setup_of(ctx)
    big = ctx.pick(reference(setup, depth=18, width=16, size=56, segments=8, stem_stride=2),
                   reference(setup, depth=18, width=64, size=112, segments=8, stem_stride=4))
    cpu = torch.device("cpu")
    rows = [{**r, "motion_top1": top1(ctx, "motion", r["model"])}
            for r in costs(list(ALL), setup, cpu, ctx.pick(5, 20))]
    # the fully inflated I3D is costed (not trained) next to ResNet3d's pattern
    big_rows = costs([*ALL, *VARIANTS_3D], big, cpu, rounds=ctx.pick(3, 10))
    by = {r["model"]: r for r in big_rows}
    tsn = by["tsn"]
    ratio = {m: (by[m]["flops"] / tsn["flops"], by[m]["latency_ms"] / tsn["latency_ms"]) for m in by}
    held = (all(ratio[m][0] <= 1.3 for m in TEMPORAL_2D)
            and all(ratio[m][0] > 1.5 and ratio[m][1] > 1.5 for m in ("i3d", "r2plus1d")))
    for r in big_rows:
        r["flops_vs_tsn"], r["latency_vs_tsn"] = ratio[r["model"]]
    figures = {f"flops_ratio_{m}": ratio[m][0] for m in by}
    figures.update({f"latency_ratio_{m}": ratio[m][1] for m in by})
    trained_size = f"ResNet-{setup.depth} w{setup.width}, {setup.segments}x{setup.size}x{setup.size} clip"
    larger = f"ResNet-{big.depth} w{big.width}, {big.segments}x{big.size}x{big.size} clip, CPU"
    tables = {f"trained size: {trained_size}": rows, f"larger: {larger}": big_rows}
    notes = ("Latency: median over repeats, per clip of a batch of 2, inference, 1 thread, on the CPU of "
             "this machine (shared: absolute times are noisy, ratios are what to read). C3D has its own "
             "plain architecture, so its size is not comparable one to one.")
    return Outcome(figures, held, tables=tables, notes=notes)
