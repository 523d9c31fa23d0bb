"""A video claim from the TSN paper: average consensus over segments beats max consensus (TSN itself,
nothing else changed; the average runs are the ones the order claim trains, see :mod:`.common`)."""

from __future__ import annotations

import torch

from deepnotes.core import Outcome, claim
from deepnotes.core.notes import Paper, Source
from deepnotes.core.verdict import Test, floor_reason, paired
from deepnotes.video.claims.common import setup_of, top1_with
from deepnotes.video.claims.recognition import NOTE_LONG_TERM
from deepnotes.video.experiments import Setup
from deepnotes.video.models import build_model

TSN_PAPER = ("Wang et al., Temporal Segment Networks: Towards Good Practices for Deep Action Recognition, "
             "ECCV 2016")


@torch.no_grad()
def max_order_blindness(setup: Setup) -> float:
    """max |logits(clip) - logits(clip reversed in time)| / max |logits| of a fresh TSN with max consensus:
    a maximum over segments is as blind to their order as the average (0 up to float rounding)."""
    torch.manual_seed(0)
    model = build_model("tsn", 8, num_segments=setup.segments, depth=setup.depth, width=setup.width,
                        stem_stride=setup.stem_stride, consensus="max").eval()
    x = torch.randn(2, 3, setup.segments, setup.size, setup.size)
    a, b = model(x), model(x.flip(2))
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


@claim("video.tsn_max_vs_avg_consensus", "video",
       "For TSN, averaging the segments' class scores (average consensus) gives a higher accuracy than "
       "taking their maximum (max consensus); both are blind to the segments' order.",
       tests=(
           Test("avg_minus_max", "scene (appearance) data: TSN top-1 with average consensus minus with max "
                "consensus, paired by seed (the data set and the initialisation)", ">", 0.0),
           Test("max_order_blind", "max |TSN-max logits(clip) - logits(clip reversed)| / max |logits|", "<",
                1e-5, method="exact", decides=False),
       ),
       origin="paper",
       source=Source("motion", NOTE_LONG_TERM, "Problem of long-term modelling: each frame goes through the "
                     "backbone alone and the final features are combined by temporal max/average pooling "
                     "(the note names both poolings; the TSN paper compares them)"),
       paper=Paper(TSN_PAPER, "the segmental consensus functions compared (max pooling, average pooling, "
                   "weighted average): average pooling gives the best two-stream accuracy and is the "
                   "paper's default", "UCF101 split 1, BN-Inception, 3 segments"))
def tsn_max_vs_avg_consensus(ctx) -> Outcome:
    seeds = ctx.pick([ctx.seed], ctx.seeds(3))
    avg = [top1_with(ctx, "scene", "tsn", s) for s in seeds]
    mx = [top1_with(ctx, "scene", "tsn", s, tag="max", consensus="max") for s in seeds]
    setup = setup_of(ctx)
    samples = {"avg_minus_max": paired(avg, mx), "max_order_blind": max_order_blindness(setup)}
    floor = {"avg_minus_max": floor_reason({"avg": avg, "max": mx}, "top-1", ceiling=1.0)}
    rows = [{"seed": s, "avg_top1": a, "max_top1": m} for s, a, m in zip(seeds, avg, mx, strict=True)]
    figures = {"avg_top1": sum(avg) / len(avg), "max_top1": sum(mx) / len(mx)}
    notes = (f"TSN ResNet-{setup.depth} width {setup.width}, {setup.segments} segments of "
             f"{setup.size}x{setup.size}, {setup.epochs} epochs, the recognition claims' settings; the two "
             f"consensus functions differ in nothing else. {len(seeds)} seed(s): at --quick one (the "
             "report's seed, whose average-consensus run the order claim already trained), so no interval.")
    return Outcome(figures, samples, floor=floor, tables={"TSN top-1 by consensus": rows}, notes=notes)
