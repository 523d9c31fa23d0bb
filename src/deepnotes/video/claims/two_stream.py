"""Claims of the video topic about optical flow, two-stream fusion and untrimmed-video localisation."""

from __future__ import annotations

import shutil
import time

import numpy as np
import torch

from deepnotes.core.claims import ClaimContext, Outcome, claim


def _train(ctx: ClaimContext, model: str, train_list, val_list, out, **kw) -> list[dict]:
    from deepnotes.video.config import TrainConfig
    from deepnotes.video.training import train

    cfg = TrainConfig(model=model, train=str(train_list), val=val_list and str(val_list), out=str(out), workers=0,
                      cache=True,
                      device=str(ctx.device), seed=ctx.seed, **kw)
    return train(cfg)


def _latency_ms(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> float:
    from deepnotes.core.timing import time_call

    model = model.to(device).eval()
    x = x.to(device)
    with torch.no_grad():
        return time_call(lambda: model(x), device, warmup=2, repeat=5)


@claim(
    "video.two_stream_fusion",
    topic="video",
    statement="Late fusion of a spatial (RGB) and a temporal (optical flow) stream beats each stream alone when "
              "the class depends on both appearance and motion; the flow stream's cost (flow extraction + "
              "network) is set against one RGB network with an in-network motion module (TSM).",
    condition="on appearance_motion (4 classes = colour x direction), fused top-1 > max(RGB top-1, flow top-1)",
)
def two_stream_fusion(ctx: ClaimContext) -> Outcome:
    from deepnotes.video.experiments import threads

    with threads(1):  # tiny models: extra threads only wait for each other
        return _two_stream_fusion(ctx)


def _two_stream_fusion(ctx: ClaimContext) -> Outcome:
    from deepnotes.video.two_stream.flow import extract_list
    from deepnotes.video.models import build_model
    from deepnotes.video.two_stream.synth import write_appearance_motion

    n, n_val, frames, size = ctx.pick((12, 6, 10, 32), (60, 20, 16, 64))
    seg, L = 3, 3
    epochs = ctx.pick(8, 20)
    data = ctx.scratch("data")
    paths = write_appearance_motion(data, n, n_val, frames=frames, size=size, seed=ctx.seed)
    for split in ("train", "val"):  # extract afresh: the claim times extraction
        shutil.rmtree(data / f"flow_{split}", ignore_errors=True)
    flow_reports = {s: extract_list(paths[s], data / f"flow_{s}", method="dis", workers=1, formats=("npz",),
                                    show_progress=False) for s in ("train", "val")}
    common = dict(segments=seg, input_size=size, depth=10, width=ctx.pick(8, 16), epochs=epochs,
                  batch_size=8, lr=3e-3, dropout=0.0, crop="center", stem_stride=ctx.pick(1, 2))
    runs = ctx.scratch("runs")
    for sub in ("two_stream", "tsm"):
        (runs / sub / "checkpoint.safetensors").unlink(missing_ok=True)
    t0 = time.perf_counter()
    ts = _train(ctx, "two_stream", paths["train"], paths["val"], runs / "two_stream",
                flow_train=data / "flow_train/flow_list.txt", flow_val=data / "flow_val/flow_list.txt",
                new_length=L, fusion="weighted:1,1.5", **common)[-1]
    t_two = time.perf_counter() - t0
    t0 = time.perf_counter()
    tsm = _train(ctx, "tsm", paths["train"], paths["val"], runs / "tsm", **common)[-1]
    t_tsm = time.perf_counter() - t0

    # cost per clip: flow for S*L fields + both streams, against TSM on S RGB frames
    flow_ms_per_field = 1e3 * float(np.mean([r.seconds_per_frame for r in flow_reports.values()]))
    two = build_model("two_stream", 4, num_segments=seg, depth=10, width=common["width"],
                      stem_stride=common["stem_stride"], new_length=L, input_size=size)
    rgb = build_model("tsm", 4, num_segments=seg, depth=10, width=common["width"], stem_stride=common["stem_stride"],
                      input_size=size)
    two_ms = _latency_ms(two, torch.zeros(1, 3 + 2 * L, seg, size, size), ctx.device)
    tsm_ms = _latency_ms(rgb, torch.zeros(1, 3, seg, size, size), ctx.device)
    from deepnotes.video.models import model_cost

    two_cost, tsm_cost = model_cost(two), model_cost(rgb)
    figures = {
        "rgb_top1": ts["rgb_top1"], "flow_top1": ts["flow_top1"], "fusion_top1": ts["top1"], "tsm_top1": tsm["top1"],
        "flow_ms_per_field": flow_ms_per_field, "flow_ms_per_clip": flow_ms_per_field * seg * L,
        "two_stream_net_ms": two_ms, "tsm_net_ms": tsm_ms,
        "two_stream_total_ms": two_ms + flow_ms_per_field * seg * L,
        "two_stream_gflops": two_cost["flops"] / 1e9, "tsm_gflops": tsm_cost["flops"] / 1e9,
        "two_stream_train_s": t_two, "tsm_train_s": t_tsm,
    }
    held = ts["top1"] > max(ts["rgb_top1"], ts["flow_top1"])
    table = [
        {"model": "spatial stream (RGB, TSN)", "top1": round(ts["rgb_top1"], 3), "ms_per_clip": None},
        {"model": "temporal stream (flow, TSN)", "top1": round(ts["flow_top1"], 3), "ms_per_clip": None},
        {"model": "two-stream fusion 1:1.5", "top1": round(ts["top1"], 3),
         "ms_per_clip": round(figures["two_stream_total_ms"], 2)},
        {"model": "TSM (RGB, in-network motion)", "top1": round(tsm["top1"], 3), "ms_per_clip": round(tsm_ms, 2)},
    ]
    return Outcome(figures, held,
                   condition=f"fused top-1 {ts['top1']:.3f} > max(RGB {ts['rgb_top1']:.3f}, flow {ts['flow_top1']:.3f})",
                   tables={"accuracy_and_cost": table},
                   notes=f"{n} train / {n_val} val videos per class, {frames} frames of {size}px, {epochs} epochs; "
                         f"two-stream per clip = DIS flow for {seg}x{L} fields ({flow_ms_per_field:.2f} ms each) "
                         f"+ both networks ({two_ms:.2f} ms); TSM needs only its network ({tsm_ms:.2f} ms).")


@claim(
    "video.untrimmed_localisation",
    topic="video",
    statement="Sliding windows scored by a trained recogniser with a background class, plus actionness and "
              "temporal NMS, localise actions in untrimmed video (mAP at tIoU 0.3/0.5/0.7); a finer window "
              "stride costs time; actor boxes are scored by frame-mAP at IoU 0.5.",
    condition="mAP@tIoU0.5 >= 0.5 at stride 4, and stride 2 takes longer per video than stride 8",
)
def untrimmed_localisation(ctx: ClaimContext) -> Outcome:
    from deepnotes.video.experiments import threads

    with threads(1):
        return _untrimmed_localisation(ctx)


def _untrimmed_localisation(ctx: ClaimContext) -> Outcome:
    from deepnotes.video.data.decode import read_video
    from deepnotes.video.training import evaluate, load_run
    from deepnotes.video.untrimmed.actors import actor_net_boxes, motion_boxes, train_actor_net
    from deepnotes.video.untrimmed.dataset import write_untrimmed_dataset
    from deepnotes.video.untrimmed.detect import run_scorer
    from deepnotes.video.untrimmed.evaluate import frame_map, localization_map
    from deepnotes.video.untrimmed.localize import LocalizeConfig, detect_segments
    from deepnotes.video.untrimmed.synth import make_untrimmed_set

    n_train, n_val, T, size = ctx.pick((8, 3, 96, 64), (40, 15, 160, 64))
    window = 16
    data = ctx.scratch("data")
    paths = write_untrimmed_dataset(data, n_train, n_val, window=window, stride=2, seed=ctx.seed, num_frames=T,
                                    size=size)
    run = ctx.scratch("run")
    (run / "checkpoint.safetensors").unlink(missing_ok=True)
    # full resolution in, stem stride 2: the actor keeps its detail, the feature maps stay small
    _train(ctx, "tsm", paths["train"], None, run, segments=8, input_size=size, depth=10, width=ctx.pick(8, 16),
           epochs=ctx.pick(15, 30), batch_size=16, lr=5e-3, dropout=0.0, crop="center", stem_stride=2)
    rec = evaluate(run, paths["val"], workers=0, device=str(ctx.device))  # window classification
    model, meta = load_run(run, ctx.device)
    scorer = run_scorer(model, meta, ctx.device)
    val_videos = make_untrimmed_set(n_val, seed=ctx.seed * 1000 + 1, num_frames=T, size=size)  # same generator as on disk
    decoded = [read_video(data / "videos" / f"val_{i:04d}.mp4") for i in range(n_val)]
    gt = {str(i): [(x.start, x.end, x.label) for x in v.instances] for i, v in enumerate(val_videos)}

    strides = ctx.pick((2, 4, 8), (1, 2, 4, 8, 16))
    rows, dets_at = [], {}
    for stride in strides:
        cfg = LocalizeConfig(window=window, stride=stride)
        t0 = time.perf_counter()
        dets = {str(i): detect_segments(f, scorer, 0, cfg)[0] for i, f in enumerate(decoded)}
        seconds = (time.perf_counter() - t0) / n_val
        res = localization_map(gt, dets)
        dets_at[stride] = dets
        rows.append({"stride": stride, "mAP@0.3": round(res["mAP"][0.3], 3), "mAP@0.5": round(res["mAP"][0.5], 3),
                     "mAP@0.7": round(res["mAP"][0.7], 3), "s_per_video": round(seconds, 3)})

    # where: frame-mAP of actor boxes on the detected segments (stride 4), motion vs a small learned segmenter
    train_videos = make_untrimmed_set(n_train, seed=ctx.seed * 1000, num_frames=T, size=size)
    net = train_actor_net(np.concatenate([v.frames for v in train_videos]),
                          np.concatenate([v.actor_boxes for v in train_videos]), steps=ctx.pick(150, 400), seed=ctx.seed)
    frame_gt = {(str(i), inst.start + k): [(inst.label, b)] for i, v in enumerate(val_videos)
                for inst in v.instances for k, b in enumerate(inst.boxes)}
    # detected segments (when + what + where) and ground-truth segments with score 1 (where alone)
    oracle = {str(i): [(x.start, x.end, x.label, 1.0) for x in v.instances] for i, v in enumerate(val_videos)}
    box_maps, box_rows = {}, []
    for name, fn in (("motion", motion_boxes), ("learned", lambda f: actor_net_boxes(net, f))):
        boxes = [fn(f) for f in decoded]
        row = {"boxes": name}
        for seg_name, segs in (("detected", dets_at[4]), ("ground_truth", oracle)):
            frame_dets: dict = {}
            for i, b in enumerate(boxes):
                for s, e, label, score in segs[str(i)]:
                    for t in range(s, e):
                        if not np.isnan(b[t, 0]):
                            frame_dets.setdefault((str(i), t), []).append((label, b[t], score))
            value = frame_map(frame_gt, frame_dets, 0.5)["frame_mAP"]
            box_maps[f"{name}_{seg_name}"] = value
            row[f"frame_mAP@0.5 ({seg_name} segments)"] = round(value, 3)
        box_rows.append(row)

    by = {r["stride"]: r for r in rows}
    fig = _plot_stride(rows)
    ctx.save_plot(fig, "stride")
    figures = {f"mAP@{t}_stride{r['stride']}": r[f"mAP@{t}"] for r in rows for t in (0.3, 0.5, 0.7)}
    figures.update({f"s_per_video_stride{r['stride']}": r["s_per_video"] for r in rows})
    figures.update(recogniser_top1=rec["top1"], **{f"frame_mAP_{k}": v for k, v in box_maps.items()})
    held = by[4]["mAP@0.5"] >= 0.5 and by[2]["s_per_video"] > by[8]["s_per_video"]
    return Outcome(figures, held,
                   condition=f"mAP@0.5 at stride 4 = {by[4]['mAP@0.5']:.3f} >= 0.5 and stride 2 "
                             f"({by[2]['s_per_video']:.2f}s/video) slower than stride 8 ({by[8]['s_per_video']:.2f}s)",
                   tables={"stride": rows, "actor_boxes": box_rows},
                   notes=f"TSM recogniser (background + 4 actions) window top-1 {rec['top1']:.3f}; {n_train} train / "
                         f"{n_val} val untrimmed videos of {T} frames; window {window} frames.")


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
