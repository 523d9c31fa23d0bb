"""Claims of the pose topic (RLE vs regression vs heatmaps), measured on the synthetic figure set.

All four claims share one synthetic dataset and the models trained on it (cached per process, and in
``OUT/work/pose_shared`` across runs: training resumes from complete checkpoints instead of starting over).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from deepnotes.core import ClaimContext, Outcome, claim
from deepnotes.core.notes import Paper, Source
from deepnotes.core.timing import count_flops, time_call
from deepnotes.core.verdict import Test, floor_reason, ratios
from deepnotes.pose.data.coco import load_coco
from deepnotes.pose.data.synth import RENDER_VERSION, write_dataset
from deepnotes.pose.data.topdown import TopDownDataset
from deepnotes.pose.evaluate import Predictions, coco_results, joint_errors, oks_ap, pixel_metrics, predict
from deepnotes.pose.heads.heatmap import crop_to_heatmap, decode_argmax, gaussian_targets, heatmap_to_crop
from deepnotes.pose.model import PoseConfig, PoseModel
from deepnotes.pose.train import TrainConfig, load_run, train


@dataclass(frozen=True)
class Size:
    n_train: int
    n_val: int
    image_hw: tuple[int, int]
    input_hw: tuple[int, int]
    heatmap_hw: tuple[int, int]  # claim 1's heatmap head (stride 4, SimpleBaseline's ratio)
    heatmap_sizes: tuple[tuple[int, int], ...]  # claim 2
    depth: int
    width: int
    epochs: int
    lr: float = 3e-3
    batch_size: int = 32


QUICK = Size(400, 60, (96, 96), (64, 48), (16, 12), ((32, 24), (16, 12), (8, 6)), 10, 8, 6)
FULL = Size(6000, 500, (160, 160), (128, 96), (32, 24), ((64, 48), (32, 24), (16, 12), (8, 6)), 18, 16, 40)

_CACHE: dict[tuple, object] = {}
# the trained models' folder under the shared data: runs written before the training engine are refused
# for resume, so they get another folder (retrained once) instead of an error in an old --out
RUNS = "runs-engine1"


@contextlib.contextmanager
def _threads_for(device: torch.device):
    """Tiny networks on CPU train about twice as fast with one intra-op thread (no per-op synchronisation)."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _data(ctx: ClaimContext) -> tuple[object, object]:
    size: Size = ctx.pick(QUICK, FULL)
    key = ("data", ctx.quick, ctx.seed)
    if key not in _CACHE:
        mode = "quick" if ctx.quick else "full"
        root = ctx.out_dir / "work" / "pose_shared" / f"{mode}-seed{ctx.seed}-render{RENDER_VERSION}"
        train_ann, val_ann = root / "train" / "annotations.json", root / "val" / "annotations.json"
        if not train_ann.is_file():
            write_dataset(root / "train", size.n_train, seed=2 * ctx.seed, size=size.image_hw)
        if not val_ann.is_file():
            write_dataset(root / "val", size.n_val, seed=2 * ctx.seed + 1, size=size.image_hw)
        _CACHE[key] = (train_ann, val_ann, root)
    return _CACHE[key]


def _model(ctx: ClaimContext, head: str, heatmap_hw: tuple[int, int] | None = None
           ) -> tuple[PoseModel, Predictions, dict]:
    """Train (or reuse) one model; returns it with its validation predictions and metrics."""
    size: Size = ctx.pick(QUICK, FULL)
    heatmap_hw = heatmap_hw or size.heatmap_hw
    key = ("model", ctx.quick, ctx.seed, str(ctx.device), head, heatmap_hw if head == "heatmap" else None)
    if key in _CACHE:
        return _CACHE[key]
    train_ann, val_ann, root = _data(ctx)
    name = head if head != "heatmap" else f"heatmap{heatmap_hw[0]}x{heatmap_hw[1]}"
    config = PoseConfig(head=head, input_hw=size.input_hw, heatmap_hw=heatmap_hw, depth=size.depth,
                        width=size.width, deconv_channels=4 * size.width)
    tc = TrainConfig(epochs=size.epochs, batch_size=size.batch_size, lr=size.lr, seed=ctx.seed)
    with _threads_for(ctx.device):
        torch.manual_seed(ctx.seed)
        run = root / RUNS / name
        train(train_ann, val_ann, run, config, tc, ctx.device, resume=True, log=lambda _: None)
        model = load_run(run, ctx.device)
        samples = load_coco(val_ann).samples
        preds = predict(model, TopDownDataset(samples, size.input_hw), ctx.device, batch_size=64)
    metrics = {**oks_ap(samples, coco_results(samples, preds)), **pixel_metrics(samples, preds)}
    _CACHE[key] = (model, preds, metrics)
    return _CACHE[key]


def _plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


METRICS = ("AP", "AP50", "AP75", "PCK@0.05", "PCK@0.1", "mean_error_px")


RLE_PAPER = ("Li et al., Human Pose Regression with Residual Log-likelihood Estimation, ICCV 2021 "
             "(arXiv:2107.11291)")
NOTE_HEATMAP = "常见的是64x64,再小的话误差下界过大会造成严重的精度损失"
HEATMAP_EN = ("64x64 is common; any smaller and the error's lower bound grows so large that it causes a "
              "serious loss of accuracy")


@claim(
    "pose.rle_beats_l1_regression",
    topic="pose",
    statement="RLE closes the gap of regression: with the same backbone, data and schedule, regressing mu "
              "and sigma with the residual log-likelihood (flow) loss is more accurate than plain L1 "
              "regression; heatmaps are shown alongside.",
    tests=(
        Test("ap_gain", "OKS AP of the RLE head minus the L1 regression head's (one training each)",
             ">", 0.0),
        Test("pck_gain", "PCK@0.1 of RLE minus L1 regression", ">", 0.0, decides=False),
    ),
    origin="paper",
    source=Source("rle", "一般来说,我们可以把姿态估计任务分成两个流派:Heatmapbased和Regressionbased。",
                  "Broadly, pose estimation splits into two schools: heatmap-based and regression-based. "
                  "(The excerpt stops before RLE's result.)"),
    paper=Paper(RLE_PAPER, "COCO val: RLE lifts direct regression by a large margin, to heatmap-level AP "
                "(the paper's ablation and comparison tables)", "COCO keypoints, ResNet backbones"),
)
def rle_beats_l1(ctx: ClaimContext) -> Outcome:
    rows = []
    for head in ("rle", "regression", "heatmap"):
        _, _, m = _model(ctx, head)
        rows.append({"head": head, **{k: round(m[k], 4) for k in METRICS}})
    by = {r["head"]: r for r in rows}
    plt = _plot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    names = [r["head"] for r in rows]
    for ax, keys in zip(axes, (("AP", "AP50", "PCK@0.1"), ("mean_error_px",)), strict=True):
        for i, k in enumerate(keys):
            ax.bar(np.arange(3) + i * 0.8 / len(keys), [r[k] for r in rows], 0.8 / len(keys), label=k)
        ax.set_xticks(np.arange(3) + 0.4 - 0.4 / len(keys), names)
        ax.legend(fontsize=8)
    axes[1].set_ylabel("px (original image)")
    ctx.save_plot(fig, "accuracy")
    figures = {f"{k}_{r['head']}": r[k] for r in rows for k in METRICS}
    samples = {"ap_gain": [by["rle"]["AP"] - by["regression"]["AP"]],
               "pck_gain": [by["rle"]["PCK@0.1"] - by["regression"]["PCK@0.1"]]}
    floor = {"ap_gain": floor_reason({h: by[h]["AP"] for h in ("rle", "regression")}, "OKS AP", floor=0.0)}
    notes = (f"size: {ctx.pick(QUICK, FULL)}. One training per head (n = 1). OKS on these small figures "
             "(scale = silhouette area) only credits errors of a few pixels: briefly trained models sit at "
             "AP 0, where PCK and pixel error still rank the heads.")
    return Outcome(figures, samples, floor=floor, tables={"accuracy": rows}, notes=notes)


def _oracle_floor(val_ann, size: Size, heatmap_hw: tuple[int, int]) -> float:
    """Mean error (crop px) of encoding the true joints as Gaussian targets and decoding them by argmax with
    the quarter shift: the error a perfect heatmap network would still make at this resolution."""
    samples = load_coco(val_ann).samples
    ds = TopDownDataset(samples, size.input_hw)
    errs = []
    for i in range(len(ds)):
        item = ds[i]
        kp, w = item["keypoints"][None], item["weight"][None] > 0
        sigma = max(1.0, 2.0 * heatmap_hw[1] / 48)
        hm = gaussian_targets(crop_to_heatmap(kp, size.input_hw, heatmap_hw), heatmap_hw, sigma)
        dec = heatmap_to_crop(decode_argmax(hm)[0], size.input_hw, heatmap_hw)
        errs.append((dec - kp).norm(dim=-1)[w])
    return float(torch.cat(errs).mean())


@claim(
    "pose.heatmap_quantisation_floor",
    topic="pose",
    statement="Heatmap accuracy depends on the output resolution: argmax decoding has a quantisation floor "
              "that grows as the heatmap shrinks, while regression heads have no such floor.",
    tests=(
        Test("floor_growth", "encode-decode floor (true joints -> Gaussian heatmap -> argmax) at the "
             "smallest heatmap / at the largest", ">", 1.0, method="exact", scale="log"),
        Test("floor_monotone", "min over neighbouring heatmap sizes of floor(smaller) / floor(larger)",
             ">", 1.0,
             method="exact", scale="log"),
        Test("trained_error", "trained heatmap model's mean error at the smallest heatmap / at the largest "
             "(one training each)", ">", 1.0, scale="log", decides=False),
    ),
    origin="note",
    source=Source("rle", NOTE_HEATMAP, HEATMAP_EN),
)
def heatmap_floor(ctx: ClaimContext) -> Outcome:
    size: Size = ctx.pick(QUICK, FULL)
    _, val_ann, _ = _data(ctx)
    rows = []
    for hw in size.heatmap_sizes:
        _, _, m = _model(ctx, "heatmap", hw)
        rows.append({"heatmap": f"{hw[0]}x{hw[1]}", "stride": size.input_hw[0] // hw[0],
                     "floor_crop_px": round(_oracle_floor(val_ann, size, hw), 3),
                     **{k: round(m[k], 4) for k in ("AP", "PCK@0.05", "mean_error_px")}})
    reg = {h: _model(ctx, h)[2] for h in ("regression", "rle")}
    plt = _plot()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    strides = [r["stride"] for r in rows]
    ax.plot(strides, [r["mean_error_px"] for r in rows], "o-", label="heatmap (trained), image px")
    ax.plot(strides, [r["floor_crop_px"] for r in rows], "s--", label="encode-decode floor, crop px")
    for h, m in reg.items():
        ax.axhline(m["mean_error_px"], ls=":", color="C2" if h == "rle" else "C3", label=f"{h} (no heatmap)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("heatmap stride (input px per heatmap px)")
    ax.set_ylabel("mean error")
    ax.legend(fontsize=7)
    ctx.save_plot(fig, "resolution")
    floors = [r["floor_crop_px"] for r in rows]  # rows go from the largest heatmap to the smallest
    figures = {f"error_px_heatmap{r['heatmap']}": r["mean_error_px"] for r in rows}
    figures.update({f"floor_crop_px_{r['heatmap']}": r["floor_crop_px"] for r in rows})
    figures.update({f"error_px_{h}": m["mean_error_px"] for h, m in reg.items()})
    samples = {"floor_growth": floors[-1] / floors[0],
               "floor_monotone": min(b / a for a, b in zip(floors, floors[1:], strict=False)),
               "trained_error": [rows[-1]["mean_error_px"] / rows[0]["mean_error_px"]]}
    return Outcome(figures, samples, tables={"resolution": rows},
                   notes="The floor is computed, not trained: exact. The trained models' errors (one "
                         "training per size) are reported beside it.")


def square_heatmap_floor(crop: int, side: int, n: int, seed: int) -> float:
    """Mean error (crop px) of encoding ``n`` uniformly drawn joints of a ``crop`` x ``crop`` input as
    Gaussian targets on a ``side`` x ``side`` heatmap and decoding them by argmax with the quarter shift.
    The joints lie in the middle 80% of the crop (where a person box padded by 1.25 puts them)."""
    g = torch.Generator().manual_seed(seed)
    kp = (0.1 + 0.8 * torch.rand(1, n, 2, generator=g, dtype=torch.float64)) * (crop - 1)
    hw, sigma = (side, side), max(1.0, 2.0 * side / 64)  # SimpleBaseline's sigma 2 at 64 wide, scaled
    hm = gaussian_targets(crop_to_heatmap(kp, (crop, crop), hw), hw, sigma)
    dec = heatmap_to_crop(decode_argmax(hm)[0], (crop, crop), hw)
    return float((dec - kp).norm(dim=-1).mean())


@claim(
    "pose.heatmap_64_floor",
    topic="pose",
    statement="At the heatmap sizes the note names, on SimpleBaseline's 256-pixel input: a 64x64 heatmap "
              "leaves a small encode-decode error floor, and every smaller heatmap a larger one.",
    tests=(
        Test("floor_64", "encode-decode floor (joints -> Gaussian 64x64 heatmap -> argmax with the quarter "
             "shift) on a 256x256 crop, % of the crop side", "<", 1.0, method="exact"),
        Test("floor_smaller", "min over 32x32, 16x16, 8x8 of floor / floor at 64x64", ">", 1.0,
             method="exact", scale="log"),
        Test("floor_8_vs_64", "floor at 8x8 / floor at 64x64", ">", 1.0, method="exact", scale="log",
             decides=False),
    ),
    origin="note",
    source=Source("rle", NOTE_HEATMAP, HEATMAP_EN),
    paper=Paper("Xiao et al., Simple Baselines for Human Pose Estimation and Tracking, ECCV 2018",
                "Table 2 (ResNet-50, 256x192 input): three deconvolution layers, 64x48 heatmaps, AP 70.4; "
                "two, 32x24 heatmaps, AP 67.9; a 128x96 input (32x24 heatmaps) 60.6", "COCO val2017 "
                "keypoints"),
)
def heatmap_64_floor(ctx: ClaimContext) -> Outcome:
    crop, n = 256, ctx.pick(4000, 40000)
    sides = (64, 32, 16, 8)
    floors = {s: square_heatmap_floor(crop, s, n, ctx.seed) for s in sides}
    rows = [{"heatmap": f"{s}x{s}", "stride": crop // s, "floor_crop_px": round(floors[s], 3),
             "floor_%_of_crop": round(100 * floors[s] / crop, 3),
             "vs 64x64": round(floors[s] / floors[64], 2)}
            for s in sides]
    figures = {f"floor_crop_px_{s}x{s}": floors[s] for s in sides}
    figures["floor_pct_64x64"] = 100 * floors[64] / crop
    samples = {"floor_64": 100 * floors[64] / crop,
               "floor_smaller": min(floors[s] / floors[64] for s in sides[1:]),
               "floor_8_vs_64": floors[8] / floors[64]}
    return Outcome(figures, samples, tables={"square heatmaps on a 256x256 crop": rows},
                   notes=f"{n} joints drawn uniformly in the middle 80% of the crop; computed, not trained "
                         "(exact). SimpleBaseline's Table 2 stands beside it: the floor is what even a "
                         "perfect network keeps; a trained one adds its own error on top.")


@claim(
    "pose.rle_head_cost",
    topic="pose",
    statement="Regression with RLE is cheap: the flow is dropped at inference, leaving a linear layer, while "
              "a heatmap head spends most of the network's compute on deconvolutions at high resolution.",
    tests=(
        Test("head_flops", "RLE head FLOPs (flow removed) / heatmap head FLOPs (64x48 maps, 3 "
             "deconvolutions)", "<", 0.01, method="exact", scale="log"),
        Test("latency", "whole RLE model's CPU latency / whole heatmap model's (batch 1, one thread), per "
             "interleaved round", "<", 1.0, scale="log"),
    ),
    origin="note",
    source=Source("rle", "因此也就自然而然导致了很大的计算量和内存开销。",
                  "and so, naturally, this leads to a large amount of computation and memory."),
    paper=Paper(RLE_PAPER, "the flow model is used in training only: at test time the regression head is a "
                "linear layer on pooled features", "COCO keypoints"),
)
def head_cost(ctx: ClaimContext) -> Outcome:
    # SimpleBaseline's shape: 256x192 crops, stride-32 features, three deconvolutions to a 64x48 heatmap
    width, depth, channels = ctx.pick((16, 18, 64), (64, 50, 256))
    input_hw = (256, 192)
    models, feats, x = {}, {}, torch.randn(1, 3, *input_hw)
    for head in ("rle", "heatmap"):
        cfg = PoseConfig(head=head, input_hw=input_hw, heatmap_hw=(64, 48), depth=depth, width=width,
                         stages=4, deconv_channels=channels)
        models[head] = PoseModel(cfg).eval()
        if head == "rle":
            models[head].head.strip_flow()
        with torch.no_grad():
            feats[head] = models[head].backbone(x)
    # interleaved rounds, median per model: a load spike on a shared machine hits both models alike
    wall: dict[str, list[float]] = {h: [] for h in models}
    head_wall: dict[str, list[float]] = {h: [] for h in models}
    cpu: dict[str, list[float]] = {h: [] for h in models}
    # one intra-op thread: on a shared machine, multi-threaded timings mostly measure waiting for the others
    with torch.no_grad(), _threads_for(torch.device("cpu")):
        for _ in range(ctx.pick(7, 25)):
            for head, model in models.items():
                c0 = time.process_time()
                wall[head].append(time_call(lambda m=model: m(x), "cpu", warmup=1, repeat=1))
                cpu[head].append((time.process_time() - c0) * 500)  # two calls (warm-up + timed): ms per call
                head_wall[head].append(time_call(lambda m=model, f=feats[head]: m.head(f), "cpu", warmup=1,
                                                 repeat=1))
    rows = []
    for head, model in models.items():
        rows.append({"head": head, "head_MFLOPs": round(count_flops(model.head, feats[head]) / 1e6, 3),
                     "model_MFLOPs": round(count_flops(model, x) / 1e6, 1),
                     "head_params": sum(p.numel() for p in model.head.parameters()),
                     "head_ms": round(statistics.median(head_wall[head]), 3),
                     "model_ms": round(statistics.median(wall[head]), 2),
                     "model_cpu_ms": round(statistics.median(cpu[head]), 2)})
    r, h = rows
    keys = ("head_MFLOPs", "model_MFLOPs", "head_ms", "model_ms", "model_cpu_ms")
    figures = {f"{k}_{row['head']}": row[k] for row in rows for k in keys}
    figures["head_flop_ratio_heatmap_over_rle"] = h["head_MFLOPs"] / max(r["head_MFLOPs"], 1e-9)
    samples = {"head_flops": r["head_MFLOPs"] / h["head_MFLOPs"],
               "latency": ratios(wall["rle"], wall["heatmap"])}
    return Outcome(figures, samples, tables={"cost": rows},
                   notes=f"ResNet-{depth} width {width}, {channels} deconv channels, input {input_hw}, timed "
                         "with one CPU thread, models interleaved (the rounds are the repeats)")


@claim(
    "pose.sigma_predicts_error",
    topic="pose",
    statement="RLE's sigma is a confidence: joints with larger predicted sigma have larger errors, so "
              "1 - sigma ranks predictions (and persons, for AP) better than a constant score.",
    tests=(
        Test("rho", "Spearman rank correlation of predicted sigma and actual error over labelled joints (one "
             "training)", ">", 0.0),
        Test("ap_gain", "OKS AP with 1 - sigma as the score minus AP with a constant score", ">", 0.0),
    ),
    origin="library",
    source=Source("rle", "最后网络输出为K张特征图对应K个关键点,"
                  "然后通过argmax或softargmax来获取最大值点作为估计结果。",
                  "the network finally outputs K feature maps for the K keypoints, and argmax or soft-argmax "
                  "takes the maximum as the estimate. (The note does not reach RLE's sigma: using it as a "
                  "confidence is our thesis.)"),
)
def sigma_predicts_error(ctx: ClaimContext) -> Outcome:
    from scipy.stats import spearmanr

    _, val_ann, _ = _data(ctx)
    samples = load_coco(val_ann).samples
    _, preds, metrics = _model(ctx, "rle")
    errs, scores = joint_errors(samples, preds)
    sigma = 1.0 - scores
    rho, p = spearmanr(sigma, errs)
    flat = Predictions(preds.coords, np.ones_like(preds.scores), preds.indices)
    ap_const = oks_ap(samples, coco_results(samples, flat))["AP"]
    plt = _plot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    edges = np.quantile(sigma, np.linspace(0, 1, 11))
    idx = np.clip(np.digitize(sigma, edges[1:-1]), 0, 9)
    ax.plot([sigma[idx == b].mean() for b in range(10)], [errs[idx == b].mean() for b in range(10)], "o-")
    ax.set_xlabel("predicted sigma (mean of x, y; decile bins)")
    ax.set_ylabel("mean error (px)")
    ax.set_title(f"Spearman rho = {rho:.3f}")
    ctx.save_plot(fig, "sigma-vs-error")
    figures = {"spearman_rho": float(rho), "p_value": float(p), "joints": int(len(errs)),
               "AP_sigma_score": metrics["AP"], "AP_constant_score": ap_const}
    samples = {"rho": [float(rho)], "ap_gain": [metrics["AP"] - ap_const]}
    floor = {"ap_gain": floor_reason({"sigma score": metrics["AP"], "constant score": ap_const}, "OKS AP",
                                     floor=0.0)}
    return Outcome(figures, samples, floor=floor,
                   notes=f"One training (n = 1); Spearman's p-value over {len(errs)} joints: {p:.2g} (a test "
                         "over joints of this one model, not over trainings).")
