"""Claim 6 of the video topic: sliding windows scored by a recogniser with a background class localise
actions in untrimmed video (when + what), and actor boxes say where."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepnotes.core.claims import ClaimContext, Outcome, claim
from deepnotes.core.notes import Source
from deepnotes.core.verdict import Test, floor_reason
from deepnotes.video.claims.common import train_run
from deepnotes.video.data.decode import read_video
from deepnotes.video.experiments import threads
from deepnotes.video.training import evaluate, load_run
from deepnotes.video.untrimmed.actors import actor_net_boxes, motion_boxes, train_actor_net
from deepnotes.video.untrimmed.dataset import write_untrimmed_dataset
from deepnotes.video.untrimmed.detect import run_scorer
from deepnotes.video.untrimmed.evaluate import frame_map, localization_map
from deepnotes.video.untrimmed.localize import LocalizeConfig, detect_segments
from deepnotes.video.untrimmed.synth import UntrimmedVideo, make_untrimmed_set

WINDOW = 16  # frames per scored window (and per training clip)


@claim(
    "video.untrimmed_localisation",
    topic="video",
    statement="Sliding windows scored by a trained recogniser with a background class, plus actionness and "
              "temporal NMS, localise actions in untrimmed video (mAP at tIoU 0.3/0.5/0.7); a finer window "
              "stride costs time; actor boxes are scored by frame-mAP at IoU 0.5.",
    tests=(
        Test("map", "localisation mAP at tIoU 0.5, window stride 4 (one training)", ">", 0.5),
        Test("stride_cost", "seconds per video at stride 2 / at stride 8 (one timing each)", ">", 1.0,
             scale="log", decides=False),
    ),
    origin="note",
    source=Source("two_stream", "Detection:视频是未经过裁剪的,需要先进行人的检测where和行为定位"
                  "(分析行为的始末时间)when,再进行行为的分类what。",
                  "Detection: the video is untrimmed; one must first detect the people (where) and localise "
                  "the action in time (its start and end: when), then classify it (what)."),
)
def untrimmed_localisation(ctx: ClaimContext) -> Outcome:
    with threads(1):
        return _untrimmed_localisation(ctx)


def _untrimmed_localisation(ctx: ClaimContext) -> Outcome:
    n_train, n_val, T, size = ctx.pick((8, 3, 96, 64), (40, 15, 160, 64))
    data = ctx.scratch("data")
    scorer, rec = _window_recogniser(ctx, data, n_train, n_val, T, size)
    # the same generator as on disk
    val_videos = make_untrimmed_set(n_val, seed=ctx.seed * 1000 + 1, num_frames=T, size=size)
    decoded = [read_video(data / "videos" / f"val_{i:04d}.mp4") for i in range(n_val)]
    rows, dets_at = _stride_sweep(decoded, val_videos, scorer, ctx.pick((2, 4, 8), (1, 2, 4, 8, 16)))
    box_maps, box_rows = _actor_boxes(ctx, decoded, val_videos, dets_at[4], n_train, T, size)

    by = {r["stride"]: r for r in rows}
    ctx.save_plot(_plot_stride(rows), "stride")
    figures = {f"mAP@{t}_stride{r['stride']}": r[f"mAP@{t}"] for r in rows for t in (0.3, 0.5, 0.7)}
    figures.update({f"s_per_video_stride{r['stride']}": r["s_per_video"] for r in rows})
    figures.update(recogniser_top1=rec["top1"], **{f"frame_mAP_{k}": v for k, v in box_maps.items()})
    samples = {"map": [by[4]["mAP@0.5"]],
               "stride_cost": [by[2]["s_per_video"] / max(by[8]["s_per_video"], 1e-9)]}
    floor = {"map": floor_reason({f"stride {r['stride']}": r["mAP@0.5"] for r in rows}, "mAP", floor=0.0)}
    notes = (f"TSM recogniser (background + 4 actions) window top-1 {rec['top1']:.3f}; {n_train} train / "
             f"{n_val} val untrimmed videos of {T} frames; window {WINDOW} frames. One training: the mAP has "
             "n = 1.")
    return Outcome(figures, samples, floor=floor, tables={"stride": rows, "actor_boxes": box_rows},
                   notes=notes)


def _window_recogniser(ctx: ClaimContext, data: Path, n_train: int, n_val: int, T: int,
                       size: int) -> tuple[Callable, dict]:
    """Write the untrimmed set's windows, train TSM on them (background + 4 actions) and evaluate it on the
    validation windows; returns the window scorer and the evaluation."""
    paths = write_untrimmed_dataset(data, n_train, n_val, window=WINDOW, stride=2, seed=ctx.seed,
                                    num_frames=T, size=size)
    run = ctx.scratch("run")
    (run / "checkpoint.safetensors").unlink(missing_ok=True)
    # full resolution in, stem stride 2: the actor keeps its detail, the feature maps stay small
    train_run(ctx, "tsm", paths["train"], None, run, segments=8, input_size=size, depth=10,
              width=ctx.pick(8, 16), epochs=ctx.pick(15, 30), batch_size=16, lr=5e-3, dropout=0.0,
              crop="center", stem_stride=2)
    rec = evaluate(run, paths["val"], workers=0, device=str(ctx.device))  # window classification
    model, meta = load_run(run, ctx.device)
    return run_scorer(model, meta, ctx.device), rec


def _stride_sweep(decoded: list[np.ndarray], videos: list[UntrimmedVideo], scorer: Callable,
                  strides: tuple[int, ...]) -> tuple[list[dict], dict[int, dict]]:
    """Localisation mAP and seconds per video at each window stride; returns the rows and the detections
    ({video id: [(start, end, label, score)]}) at each stride."""
    gt = {str(i): [(x.start, x.end, x.label) for x in v.instances] for i, v in enumerate(videos)}
    rows, dets_at = [], {}
    for stride in strides:
        cfg = LocalizeConfig(window=WINDOW, stride=stride)
        t0 = time.perf_counter()
        dets = {str(i): detect_segments(f, scorer, 0, cfg)[0] for i, f in enumerate(decoded)}
        seconds = (time.perf_counter() - t0) / len(decoded)
        res = localization_map(gt, dets)
        dets_at[stride] = dets
        rows.append({"stride": stride, **{f"mAP@{t}": round(res["mAP"][t], 3) for t in (0.3, 0.5, 0.7)},
                     "s_per_video": round(seconds, 3)})
    return rows, dets_at


def _actor_boxes(ctx: ClaimContext, decoded: list[np.ndarray], videos: list[UntrimmedVideo],
                 detected: dict, n_train: int, T: int, size: int) -> tuple[dict[str, float], list[dict]]:
    """Where: frame-mAP at IoU 0.5 of actor boxes from motion and from a small learned segmenter, on the
    ``detected`` segments (when + what + where) and on the ground-truth segments with score 1 (where
    alone)."""
    train_videos = make_untrimmed_set(n_train, seed=ctx.seed * 1000, num_frames=T, size=size)
    net = train_actor_net(np.concatenate([v.frames for v in train_videos]),
                          np.concatenate([v.actor_boxes for v in train_videos]), steps=ctx.pick(150, 400),
                          seed=ctx.seed)
    frame_gt = {(str(i), inst.start + k): [(inst.label, b)] for i, v in enumerate(videos)
                for inst in v.instances for k, b in enumerate(inst.boxes)}
    oracle = {str(i): [(x.start, x.end, x.label, 1.0) for x in v.instances] for i, v in enumerate(videos)}
    box_maps, box_rows = {}, []
    for name, fn in (("motion", motion_boxes), ("learned", lambda f: actor_net_boxes(net, f))):
        boxes = [fn(f) for f in decoded]
        row = {"boxes": name}
        for seg_name, segs in (("detected", detected), ("ground_truth", oracle)):
            value = frame_map(frame_gt, _boxes_on_segments(boxes, segs), 0.5)["frame_mAP"]
            box_maps[f"{name}_{seg_name}"] = value
            row[f"frame_mAP@0.5 ({seg_name} segments)"] = round(value, 3)
        box_rows.append(row)
    return box_maps, box_rows


def _boxes_on_segments(boxes: list[np.ndarray], segments: dict) -> dict:
    """Frame detections {(video id, frame): [(label, box, score)]}: each video's (T, 4) boxes (NaN: none)
    on the frames of its segments {video id: [(start, end, label, score)]}, with the segment's label and
    score."""
    frame_dets: dict = {}
    for i, b in enumerate(boxes):
        for s, e, label, score in segments[str(i)]:
            for t in range(s, e):
                if not np.isnan(b[t, 0]):
                    frame_dets.setdefault((str(i), t), []).append((label, b[t], score))
    return frame_dets


def _plot_stride(rows: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(8, 3))
    strides = [r["stride"] for r in rows]
    for t in ("mAP@0.3", "mAP@0.5", "mAP@0.7"):
        ax[0].plot(strides, [r[t] for r in rows], marker="o", label=t)
    ax[0].set_xscale("log", base=2)
    ax[0].set_xlabel("window stride (frames)")
    ax[0].set_ylabel("localisation mAP")
    ax[0].legend(fontsize=7)
    ax[1].plot(strides, [r["s_per_video"] for r in rows], marker="o")
    ax[1].set_xscale("log", base=2)
    ax[1].set_xlabel("window stride (frames)")
    ax[1].set_ylabel("seconds per video")
    fig.tight_layout()
    return fig
