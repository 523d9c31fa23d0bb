"""Claims 1-2 of the video topic (action recognition): frame order needs temporal modelling, and what
it costs in 2D and in 3D. Both read the runs trained once per report (see :mod:`.common`)."""

from __future__ import annotations

import time

import numpy as np
import torch

from deepnotes.core import Outcome, claim
from deepnotes.core.notes import Paper, Source
from deepnotes.core.timing import count_flops
from deepnotes.core.verdict import Test, floor_reason, ratios
from deepnotes.video.claims.common import setup_of, top1
from deepnotes.video.experiments import costs, model_for, reference, threads
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


NOTE_LONG_TERM = "单帧过backbone,最后的feature 进行 temporal max/average poolin"
TSM_PAPER = "Lin, Gan & Han, TSM: Temporal Shift Module for Efficient Video Understanding, ICCV 2019"


@torch.no_grad()
def order_blindness(setup, model_name: str = "tsn") -> float:
    """max |logits(clip) - logits(clip reversed in time)| / max |logits| of a freshly built model: TSN's
    average consensus over segments cannot see the order (0 up to float rounding)."""
    torch.manual_seed(0)
    model = model_for(model_name, setup).eval()
    x = torch.randn(2, 3, setup.segments, setup.size, setup.size)
    a, b = model(x), model(x.flip(2))
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


@claim("video.order_needs_temporal_modeling", "video",
       "Average consensus over frames (TSN) is blind to order: on data whose classes differ only in temporal "
       "order it stays at the pair-confusion ceiling, while TSM/TEA/STM/TDN/TAM and 3D networks learn the "
       "order; on appearance-only data TSN is as good as the temporal models.",
       tests=(
           Test("tsn_order_blind", "max |TSN logits(clip) - logits(clip reversed)| / max |logits|", "<", 1e-5,
                method="exact"),
           Test("order_gap", "motion (order-only) data: min over temporal 2D and 3D models of top-1 minus "
                "TSN's top-1 (one training each)", ">", 0.2),
           Test("scene_gap", "scene (appearance-only) data: TSN's top-1 minus the best temporal model's",
                ">", -0.05),
       ),
       origin="note",
       source=Source("motion", NOTE_LONG_TERM, "Problem of long-term modelling: each frame goes through the "
                     "backbone alone and the final features are combined by temporal max/average pooling"),
       paper=Paper(TSM_PAPER, "Something-Something V1 (order-sensitive) comparison: TSN with 8 frames far "
                   "below TSM with 8 frames at the same FLOPs; on Kinetics (scene-based) the gap is small",
                   "ResNet-50, ImageNet-pretrained, 8 frames"))
def order_needs_temporal_modeling(ctx) -> Outcome:
    scene_models = ctx.pick(("tsn", "tsm"), ALL)
    rows = []
    for m in ALL:
        rows.append({"model": m, "motion_top1": top1(ctx, "motion", m),
                     "scene_top1": top1(ctx, "scene", m) if m in scene_models else None})
    by = {r["model"]: r for r in rows}
    scene = {m: by[m]["scene_top1"] for m in scene_models}
    samples = {"tsn_order_blind": order_blindness(setup_of(ctx)),
               "order_gap": [min(by[m]["motion_top1"] for m in ALL if m != "tsn") - by["tsn"]["motion_top1"]],
               "scene_gap": [scene["tsn"] - max(v for m, v in scene.items() if m != "tsn")]}
    floor = {"scene_gap": floor_reason(scene, "top-1", ceiling=1.0),
             "order_gap": floor_reason({m: by[m]["motion_top1"] for m in ALL}, "top-1", ceiling=1.0)}
    _bar(ctx, rows, "top1")
    figures = {f"motion_top1_{r['model']}": r["motion_top1"] for r in rows}
    figures.update({f"scene_top1_{m}": v for m, v in scene.items()})
    s = setup_of(ctx)
    notes = (f"Synthetic data, {s.n_per_class} training / {s.val_per_class} validation videos per class, "
             f"{s.frames} frames of {s.size}x{s.size}; clips of {s.segments} TSN segments; ResNet-{s.depth} "
             f"width {s.width} (2D and inflated 3D), {s.epochs} epochs AdamW; last-epoch top-1, centre view. "
             "One training per model and data set (the costliest part of the report): the accuracy gaps "
             "have n = 1 and cannot be decided; TSN's blindness to order is exact.")
    return Outcome(figures, samples, floor=floor, tables={"val top-1 per model": rows}, notes=notes)


def _interleaved_latency(names: list[str], setup, rounds: int) -> dict[str, list[float]]:
    """Per model, CPU ms per clip of this thread in each of ``rounds`` interleaved rounds (batch of 2 clips,
    one thread; see :func:`deepnotes.video.experiments.costs` for why a batch of 2). CPU time rather than
    wall time: on a shared machine the time the thread waits for a core is not the model's cost."""
    models = {n: model_for(n, setup).eval() for n in names}
    x = torch.randn(2, 3, setup.segments, setup.size, setup.size)
    out: dict[str, list[float]] = {n: [] for n in names}
    with torch.no_grad(), threads(1):
        for m in models.values():
            m(x)
        for _ in range(rounds):
            for n, m in models.items():
                t0 = time.thread_time()
                m(x)
                out[n].append((time.thread_time() - t0) * 1e3 / 2)
    return out


@claim("video.cost_2d_vs_3d", "video",
       "2D temporal modules add little to TSN's cost, while 3D networks are heavy: more parameters, more "
       "FLOPs, slower inference at equal input.",
       tests=(
           Test("flops_2d", "max over temporal 2D models of FLOPs / TSN's FLOPs (ResNet-18, 8 frames)", "<",
                1.3, method="exact"),
           Test("flops_3d", "min over I3D and R(2+1)D of FLOPs / TSN's FLOPs", ">", 1.5, method="exact"),
           Test("latency_3d", "min over I3D and R(2+1)D of CPU time per clip / TSN's, per interleaved "
                "round", ">", 1.5, scale="log"),
       ),
       origin="note",
       source=Source("3d", "3Dbased 的网络参数量大,计算开销大,训练的 scheduler 更长,inference latency "
                     "明显慢于 2Dbased 的方法。",
                     "3D-based networks have many parameters and a large computational cost, train on longer "
                     "schedules, and their inference latency is clearly slower than 2D-based methods'."),
       paper=Paper(TSM_PAPER, "TSM adds zero FLOPs and parameters to TSN (the shift is free); in its "
                   "comparison tables the 3D networks (I3D, ECO, non-local I3D) cost several times TSN/TSM's "
                   "FLOPs per clip", "ResNet-50 backbones, 8-32 frames, 224x224"))
def cost_2d_vs_3d(ctx) -> Outcome:
    setup = setup_of(ctx)
    big = ctx.pick(reference(setup, depth=18, width=16, size=56, segments=8, stem_stride=2),
                   reference(setup, depth=18, width=64, size=112, segments=8, stem_stride=4))
    cpu = torch.device("cpu")
    rows = [{**r, "motion_top1": top1(ctx, "motion", r["model"])}
            for r in costs(list(ALL), setup, cpu, ctx.pick(5, 20))]
    names = [*ALL, *VARIANTS_3D]  # the fully inflated I3D is costed (not trained) next to ResNet3d's pattern
    x = torch.zeros(1, 3, big.segments, big.size, big.size)
    flops = {n: count_flops(model_for(n, big).eval(), x) for n in names}
    lat = _interleaved_latency(names, big, ctx.pick(15, 30))
    flop_ratio = {n: flops[n] / flops["tsn"] for n in names}
    lat_ratio = {n: ratios(lat[n], lat["tsn"]) for n in names}
    samples = {"flops_2d": max(flop_ratio[m] for m in TEMPORAL_2D),
               "flops_3d": min(flop_ratio[m] for m in ("i3d", "r2plus1d")),
               "latency_3d": [min(a, b) for a, b in zip(lat_ratio["i3d"], lat_ratio["r2plus1d"],
                                                        strict=True)]}
    big_rows = [{"model": n, "gflops": round(flops[n] / 1e9, 3), "flops_vs_tsn": round(flop_ratio[n], 3),
                 "median_ms": round(float(np.median(lat[n])), 2),
                 "latency_vs_tsn": round(float(np.exp(np.mean(np.log(lat_ratio[n])))), 3)} for n in names]
    figures = {f"flops_ratio_{m}": flop_ratio[m] for m in names}
    figures.update({f"latency_ratio_{m}": float(np.exp(np.mean(np.log(lat_ratio[m])))) for m in names})
    trained_size = f"ResNet-{setup.depth} w{setup.width}, {setup.segments}x{setup.size}x{setup.size} clip"
    larger = f"ResNet-{big.depth} w{big.width}, {big.segments}x{big.size}x{big.size} clip, CPU"
    tables = {f"trained size: {trained_size}": rows, f"larger: {larger}": big_rows}
    notes = ("Latency: CPU time of the thread per clip of a batch of 2, inference, 1 thread, models "
             "interleaved round by round (shared machine: absolute times are noisy; the per-round ratios are "
             "what is tested, a geometric mean with its interval). C3D has its own plain architecture, so "
             "its size is not comparable one to one.")
    return Outcome(figures, samples, tables=tables, notes=notes)
