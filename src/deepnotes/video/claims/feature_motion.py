"""A video claim of the motion note: motion taken from feature differences inside one RGB network (TEA,
STM) against frame-level motion (an optical-flow stream), in accuracy at matched network cost. TEA and STM
are the runs the recognition claims train once per report (see :mod:`.common`); the flow stream is new."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from deepnotes.core import Outcome, RunDir, atomic_write_text, claim
from deepnotes.core.notes import Paper, Source
from deepnotes.core.verdict import Test, floor_reason, paired
from deepnotes.video.claims.common import setup_of, top1_with, work_dir
from deepnotes.video.experiments import Setup, dataset, model_for, threads, train_config
from deepnotes.video.models import build_model, model_cost
from deepnotes.video.training import train
from deepnotes.video.two_stream.flow import extract_list

FEATURE_LEVEL = ("tea", "stm")  # the note's two feature-level motion models
NEW_LENGTH = 2  # flow fields stacked per segment (frame-level motion around each sampled frame)


def flow_stream(ctx, seed: int) -> tuple[dict, float]:
    """Train (once per report) a two-stream TSN on the ``motion`` data of ``seed`` with its DIS flow, at the
    recognition claims' settings; returns the last record (``top1`` fused, ``rgb_top1``, ``flow_top1``)
    and the flow extraction's ms per field."""
    setup, work = setup_of(ctx), work_dir(ctx)
    data = dataset(work, "motion", setup, seed)
    root = data["val"].parent
    reports = {s: extract_list(data[s], root / f"flow_{s}", method="dis", workers=1, formats=("npz",),
                               show_progress=False) for s in ("train", "val")}
    out = work / f"run-motion-flowstream-{setup.key()}-s{seed}"
    run = RunDir(out)
    if not (len(run.metrics) == setup.epochs and run.has_checkpoint()):
        cfg = replace(train_config("two_stream", data, out, setup, seed, str(ctx.device)),
                      flow_train=str(root / "flow_train/flow_list.txt"),
                      flow_val=str(root / "flow_val/flow_list.txt"), new_length=NEW_LENGTH, stream="tsn",
                      fusion="weighted:1,1.5", resume=run.has_checkpoint())
        with threads(1):
            train(cfg)
        run = RunDir(out)
    # a rerun finds the flow extracted and times nothing: the first extraction's time is kept beside it
    timed = [r.seconds_per_frame for r in reports.values() if r.seconds_per_frame]
    kept = root / "flow_ms_per_field.json"
    if timed:
        atomic_write_text(kept, json.dumps(1e3 * float(np.mean(timed))))
    return run.metrics[-1], json.loads(kept.read_text()) if kept.is_file() else float("nan")


def arm_costs(setup: Setup) -> dict[str, float]:
    """FLOPs of one clip at ``setup``: each feature-level model, and the flow stream's network (a TSN on the
    2L flow channels) beside plain TSN."""
    out = {m: model_cost(model_for(m, setup))["flops"] for m in (*FEATURE_LEVEL, "tsn")}
    flow_net = build_model("tsn", 8, num_segments=setup.segments, depth=setup.depth, width=setup.width,
                           stem_stride=setup.stem_stride, input_size=setup.size, in_channels=2 * NEW_LENGTH)
    out["flow_stream_net"] = model_cost(flow_net)["flops"]
    return out


@claim("video.feature_vs_frame_motion_accuracy", "video",
       "Motion taken at the feature level inside one RGB network (TEA, STM) recognises order-sensitive "
       "actions better than frame-level motion (an optical-flow stream) at matched network cost.",
       tests=(
           Test("feature_minus_flow", "motion (order-only) data: min over TEA and STM of top-1 minus the "
                "flow stream's top-1 (a TSN on DIS flow, the same backbone and training), paired by seed",
                ">", 0.0),
           Test("feature_minus_two_stream", "the same, minus the fused two-stream's top-1 (RGB + flow: two "
                "networks and the flow, about twice the cost)", ">", 0.0, decides=False),
       ),
       origin="note",
       source=Source("motion", "过去的建模都 focus 在 framelevel motion,更好的建模方式 featurelevel motion",
                     "Past modelling focused on frame-level motion; the better way to model it is "
                     "feature-level motion"),
       paper=Paper("Li et al., TEA: Temporal Excitation and Aggregation for Action Recognition, CVPR 2020; "
                   "Jiang et al., STM: SpatioTemporal and Motion Encoding for Action Recognition, ICCV 2019",
                   "both report their RGB-only networks on Something-Something above two-stream (RGB + "
                   "optical flow) TSN and TSM entries of their comparison tables",
                   "ResNet-50, 8-16 frames, 224x224"))
def feature_vs_frame_motion(ctx) -> Outcome:
    setup = setup_of(ctx)
    seeds = ctx.pick([ctx.seed], ctx.seeds(3))
    feature = {m: [top1_with(ctx, "motion", m, s) for s in seeds] for m in FEATURE_LEVEL}
    streams, flow_ms = zip(*(flow_stream(ctx, s) for s in seeds), strict=True)
    flow = [r["flow_top1"] for r in streams]
    fused = [r["top1"] for r in streams]
    best_feature = [min(feature[m][i] for m in FEATURE_LEVEL) for i in range(len(seeds))]
    samples = {"feature_minus_flow": paired(best_feature, flow),
               "feature_minus_two_stream": paired(best_feature, fused)}
    arms = {**feature, "flow stream": flow}
    floor = {"feature_minus_flow": floor_reason(arms, "top-1", ceiling=1.0),
             "feature_minus_two_stream": floor_reason({**feature, "two-stream": fused}, "top-1", ceiling=1.0)}
    cost = arm_costs(setup)
    rows = [{"seed": s, **{f"{m}_top1": feature[m][i] for m in FEATURE_LEVEL}, "flow_stream_top1": flow[i],
             "rgb_stream_top1": streams[i]["rgb_top1"], "two_stream_top1": fused[i]}
            for i, s in enumerate(seeds)]
    figures = {f"{m}_top1": float(np.mean(v)) for m, v in feature.items()}
    figures.update({"flow_stream_top1": float(np.mean(flow)), "two_stream_top1": float(np.mean(fused)),
                    "flow_ms_per_field": float(np.mean(flow_ms))})
    figures.update({f"mflops_{k}": v / 1e6 for k, v in cost.items()})
    notes = (f"Synthetic `motion` data (classes differ only in temporal order), ResNet-{setup.depth} width "
             f"{setup.width}, {setup.segments} segments of {setup.size}x{setup.size}, {setup.epochs} epochs, "
             "the recognition claims' settings for every arm. Matched network cost: the flow stream is one "
             f"TSN on {2 * NEW_LENGTH} flow channels per segment ({cost['flow_stream_net'] / 1e6:.1f} "
             f"MFLOPs per clip against TEA's {cost['tea'] / 1e6:.1f} and STM's {cost['stm'] / 1e6:.1f}), "
             f"plus the DIS flow ({np.mean(flow_ms):.2f} ms per field, not in the FLOPs). {len(seeds)} "
             "seed(s); at --quick one (the report's seed, whose TEA and STM runs the order claim already "
             "trained), so no interval.")
    return Outcome(figures, samples, floor=floor, tables={"top-1 per seed": rows}, notes=notes)
