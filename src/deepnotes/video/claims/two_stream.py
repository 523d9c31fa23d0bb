"""Claim 5 of the video topic: late fusion of an RGB and an optical-flow stream beats each stream alone,
set against the cost of flow next to one RGB network with an in-network motion module (TSM)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch

from deepnotes.core.claims import ClaimContext, Outcome, claim
from deepnotes.core.notes import Paper, Source
from deepnotes.core.verdict import Test, floor_reason
from deepnotes.video.claims.common import latency_ms, train_run
from deepnotes.video.experiments import threads
from deepnotes.video.models import build_model, model_cost
from deepnotes.video.two_stream.flow import extract_list
from deepnotes.video.two_stream.synth import write_appearance_motion

SEGMENTS, NEW_LENGTH = 3, 3  # TSN segments per clip, flow fields stacked per segment


@claim(
    "video.two_stream_fusion",
    topic="video",
    statement="Late fusion of a spatial (RGB) and a temporal (optical flow) stream beats each stream alone "
              "when the class depends on both appearance and motion; the flow stream's cost (flow "
              "extraction + network) is set against one RGB network with an in-network motion module (TSM).",
    tests=Test("fusion_gain", "on appearance_motion (4 classes = colour x direction): fused top-1 minus the "
               "better single stream's, one data set and training per seed", ">", 0.0),
    origin="note",
    source=Source("two_stream", "两个流最后经过softmax后,做分类分数的融合",
                  "after a softmax at the end of each of the two streams, their class scores are fused"),
    paper=Paper("Simonyan & Zisserman, Two-Stream Convolutional Networks for Action Recognition in Videos, "
                "NeurIPS 2014", "Table 3, UCF-101 split 1: spatial ConvNet 73.0%, temporal ConvNet 83.7%, "
                "fusion by averaging 86.9%, by SVM 88.0%", "CNN-M-2048 streams, flow stacks of 10 frames"),
)
def two_stream_fusion(ctx: ClaimContext) -> Outcome:
    with threads(1):  # tiny models: extra threads only wait for each other
        return _two_stream_fusion(ctx)


def _two_stream_fusion(ctx: ClaimContext) -> Outcome:
    n, n_val, frames, size = ctx.pick((12, 6, 10, 32), (60, 20, 16, 64))
    epochs = ctx.pick(8, 20)
    common = dict(segments=SEGMENTS, input_size=size, depth=10, width=ctx.pick(8, 16), epochs=epochs,
                  batch_size=8, lr=3e-3, dropout=0.0, crop="center", stem_stride=ctx.pick(1, 2))
    runs = []
    for seed in ctx.seeds(ctx.pick(4, 5)):
        paths, flow_ms = _data_with_flow(ctx, seed, n, n_val, frames, size)
        ts, tsm, t_two, t_tsm = _train_both(ctx, seed, paths, common)
        runs.append({"rgb": ts["rgb_top1"], "flow": ts["flow_top1"], "fusion": ts["top1"], "tsm": tsm["top1"],
                     "flow_ms": flow_ms, "t_two": t_two, "t_tsm": t_tsm})
    cost = _net_costs(ctx, common)
    mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    flow_ms_per_clip = mean["flow_ms"] * SEGMENTS * NEW_LENGTH
    figures = {
        "rgb_top1": mean["rgb"], "flow_top1": mean["flow"], "fusion_top1": mean["fusion"],
        "tsm_top1": mean["tsm"],
        "flow_ms_per_field": mean["flow_ms"], "flow_ms_per_clip": flow_ms_per_clip,
        "two_stream_net_ms": cost["two_ms"], "tsm_net_ms": cost["tsm_ms"],
        "two_stream_total_ms": cost["two_ms"] + flow_ms_per_clip,
        "two_stream_gflops": cost["two_flops"] / 1e9, "tsm_gflops": cost["tsm_flops"] / 1e9,
        "two_stream_train_s": mean["t_two"], "tsm_train_s": mean["t_tsm"],
    }
    gains = [r["fusion"] - max(r["rgb"], r["flow"]) for r in runs]
    floor = floor_reason({k: [r[k] for r in runs] for k in ("rgb", "flow", "fusion")}, "top-1", ceiling=1.0)
    table = [{"seed": i, "rgb (TSN)": r["rgb"], "flow (TSN)": r["flow"], "fusion 1:1.5": r["fusion"],
              "TSM (RGB)": r["tsm"]} for i, r in enumerate(runs)]
    notes = (f"{n} train / {n_val} val videos per class, {frames} frames of {size}px, {epochs} epochs, "
             f"{len(runs)} seeds (data and training); two-stream per clip = DIS flow for "
             f"{SEGMENTS}x{NEW_LENGTH} fields ({mean['flow_ms']:.2f} ms each) + both networks "
             f"({cost['two_ms']:.2f} ms); TSM needs "
             f"only its network ({cost['tsm_ms']:.2f} ms).")
    return Outcome(figures, gains, floor=floor, tables={"top-1 per seed": table}, notes=notes)


def _data_with_flow(ctx: ClaimContext, seed: int, n: int, n_val: int, frames: int,
                    size: int) -> tuple[dict[str, Path], float]:
    """The appearance_motion lists and their DIS flow (extracted afresh: the claim times extraction);
    returns the lists (train, val, flow_train, flow_val) and the mean ms per flow field."""
    data = ctx.scratch(f"data-{seed}")
    paths = write_appearance_motion(data, n, n_val, frames=frames, size=size, seed=seed)
    for split in ("train", "val"):
        shutil.rmtree(data / f"flow_{split}", ignore_errors=True)
    reports = {s: extract_list(paths[s], data / f"flow_{s}", method="dis", workers=1, formats=("npz",),
                               show_progress=False) for s in ("train", "val")}
    paths = {**paths, **{f"flow_{s}": data / f"flow_{s}/flow_list.txt" for s in ("train", "val")}}
    return paths, 1e3 * float(np.mean([r.seconds_per_frame for r in reports.values()]))


def _train_both(ctx: ClaimContext, seed: int, paths: dict[str, Path],
                common: dict) -> tuple[dict, dict, float, float]:
    """Train the two-stream model (TSN streams, fusion 1:1.5) and TSM from scratch with the same settings;
    returns their last records and training seconds."""
    runs = ctx.scratch(f"runs-{seed}")
    for sub in ("two_stream", "tsm"):
        (runs / sub / "checkpoint.safetensors").unlink(missing_ok=True)
    t0 = time.perf_counter()
    ts = train_run(ctx, "two_stream", paths["train"], paths["val"], runs / "two_stream", seed=seed,
                   flow_train=paths["flow_train"], flow_val=paths["flow_val"], new_length=NEW_LENGTH,
                   fusion="weighted:1,1.5", **common)[-1]
    t_two = time.perf_counter() - t0
    t0 = time.perf_counter()
    tsm = train_run(ctx, "tsm", paths["train"], paths["val"], runs / "tsm", seed=seed, **common)[-1]
    return ts, tsm, t_two, time.perf_counter() - t0


def _net_costs(ctx: ClaimContext, common: dict) -> dict[str, float]:
    """Latency (ms per clip on the claim's device) and FLOPs of the two-stream network on S segments of
    RGB + 2L flow channels, and of TSM on S RGB frames."""
    seg, size = SEGMENTS, common["input_size"]
    shape = dict(num_segments=seg, depth=10, width=common["width"], stem_stride=common["stem_stride"],
                 input_size=size)
    two = build_model("two_stream", 4, new_length=NEW_LENGTH, **shape)
    rgb = build_model("tsm", 4, **shape)
    two_ms = latency_ms(two, torch.zeros(1, 3 + 2 * NEW_LENGTH, seg, size, size), ctx.device)
    tsm_ms = latency_ms(rgb, torch.zeros(1, 3, seg, size, size), ctx.device)
    return {"two_ms": two_ms, "tsm_ms": tsm_ms, "two_flops": model_cost(two)["flops"],
            "tsm_flops": model_cost(rgb)["flops"]}
