"""Claims of the video topic (action recognition); two-stream and untrimmed claims are in claims_two_stream.

Claims 1-3 share trained runs (one per model and dataset, cached under the report's work folder).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from deepnotes.core import Outcome, claim
from deepnotes.video.experiments import (
    FULL,
    QUICK,
    Setup,
    costs,
    dataset,
    load_trained,
    model_for,
    reference,
    threads,
    trained,
)
from deepnotes.video.models import MODELS_3D, TEMPORAL_2D, VARIANTS_3D, model_cost
from deepnotes.video.models.base import temporal_modules
from deepnotes.video.models.tam import TAM

ALL = ("tsn", *TEMPORAL_2D, *MODELS_3D)


def _setup(ctx) -> Setup:
    return ctx.pick(QUICK, FULL)


def _work(ctx) -> Path:
    path = ctx.out_dir / "work" / "video-runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _device(ctx) -> str:
    return str(ctx.device)


def _top1(ctx, kind: str, model: str) -> float:
    metrics, _ = trained(_work(ctx), kind, model, _setup(ctx), ctx.seed, _device(ctx))
    return metrics[-1]["top1"]


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
       "order it stays at the pair-confusion ceiling, while TSM/TEA/STM/TDN/TAM and 3D networks learn the order; "
       "on appearance-only data TSN is as good as the temporal models.",
       "motion: TSN top-1 <= 0.60 (ceiling 0.50) and every temporal and 3D model >= 0.80; "
       "scene: TSN top-1 >= best temporal model - 0.05")
def order_needs_temporal_modeling(ctx) -> Outcome:
    scene_models = ctx.pick(("tsn", "tsm"), ALL)
    rows = []
    for m in ALL:
        rows.append({"model": m, "motion_top1": _top1(ctx, "motion", m),
                     "scene_top1": _top1(ctx, "scene", m) if m in scene_models else None})
    by = {r["model"]: r for r in rows}
    others_motion = [by[m]["motion_top1"] for m in ALL if m != "tsn"]
    best_scene_other = max(by[m]["scene_top1"] for m in scene_models if m != "tsn")
    held = (by["tsn"]["motion_top1"] <= 0.60 and min(others_motion) >= 0.80
            and by["tsn"]["scene_top1"] >= best_scene_other - 0.05)
    _bar(ctx, rows, "top1")
    figures = {f"motion_top1_{r['model']}": r["motion_top1"] for r in rows}
    figures.update({f"scene_top1_{m}": by[m]["scene_top1"] for m in scene_models})
    s = _setup(ctx)
    notes = (f"Synthetic data, {s.n_per_class} training / {s.val_per_class} validation videos per class, "
             f"{s.frames} frames of {s.size}x{s.size}; clips of {s.segments} TSN segments; ResNet-{s.depth} width "
             f"{s.width} (2D and inflated 3D), {s.epochs} epochs AdamW; last-epoch top-1, centre view.")
    return Outcome(figures, held, tables={"val top-1 per model": rows}, notes=notes)


@claim("video.cost_2d_vs_3d", "video",
       "2D temporal modules add little to TSN's cost, while 3D networks are heavy: more parameters, more FLOPs, "
       "slower inference at equal input.",
       "at the larger input: every 2D temporal model within 1.3x TSN's FLOPs, and I3D and R(2+1)D each above 1.5x "
       "TSN's FLOPs and CPU latency")
def cost_2d_vs_3d(ctx) -> Outcome:
    setup = _setup(ctx)
    big = ctx.pick(reference(setup, depth=18, width=16, size=56, segments=8, stem_stride=2),
                   reference(setup, depth=18, width=64, size=112, segments=8, stem_stride=4))
    cpu = torch.device("cpu")
    rows = [{**r, "motion_top1": _top1(ctx, "motion", r["model"])} for r in costs(list(ALL), setup, cpu, ctx.pick(5, 20))]
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
    return Outcome(figures, held, tables={
        f"trained size: ResNet-{setup.depth} w{setup.width}, {setup.segments}x{setup.size}x{setup.size} clip": rows,
        f"larger: ResNet-{big.depth} w{big.width}, {big.segments}x{big.size}x{big.size} clip, CPU": big_rows},
        notes="Latency: median over repeats, per clip of a batch of 2, inference, 1 thread, on the CPU of this machine (shared: "
              "absolute times are noisy, ratios are what to read). C3D has its own plain architecture, so its "
              "size is not comparable one to one.")


def _temporal_stats(w: torch.Tensor) -> tuple[float, float]:
    """(spread, DC share) of weights (..., K) along the last axis.

    spread = mean |w_t - mean_t w| / mean |w| (0 = identical weight for every time step: pure smoothing);
    DC share = K * ||mean_t w||^2 / ||w||^2 (1 = pure averaging; 1/K expected for independent random weights).
    """
    w = w.double()
    mean = w.mean(-1, keepdim=True)
    spread = ((w - mean).abs().mean() / w.abs().mean()).item()
    dc = (w.shape[-1] * mean.pow(2).sum() / w.pow(2).sum()).item()
    return spread, dc


def _conv3d_kernels(model: torch.nn.Module) -> torch.Tensor:
    """All temporal kernels (kt > 1) of a 3D network as rows (n, kt)."""
    rows = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv3d) and m.kernel_size[0] > 1:
            rows.append(m.weight.detach().permute(0, 1, 3, 4, 2).reshape(-1, m.kernel_size[0]))
    return torch.cat(rows)


@claim("video.3d_kernels_smooth", "video",
       "3D convolutions learn temporal kernels that are close to uniform over time (smooth aggregation), while "
       "TAM's adaptive kernels differ across time steps and from clip to clip.",
       "after training: I3D's temporal spread is below TAM's and its DC share is above its value at "
       "initialisation")
def kernels_smooth(ctx) -> Outcome:
    setup, work = _setup(ctx), _work(ctx)
    rows, figures = [], {}
    for m in MODELS_3D:
        _, run = trained(work, "motion", m, setup, ctx.seed, _device(ctx))
        torch.manual_seed(ctx.seed)
        init = model_for(m, setup)
        s0, d0 = _temporal_stats(_conv3d_kernels(init))
        s1, d1 = _temporal_stats(_conv3d_kernels(load_trained(run)))
        rows.append({"model": m, "spread_init": s0, "spread_trained": s1, "dc_share_init": d0, "dc_share_trained": d1})
        figures.update({f"{m}_spread": s1, f"{m}_dc_share": d1, f"{m}_dc_share_init": d0})
    _, run = trained(work, "motion", "tam", setup, ctx.seed, _device(ctx))
    per_layer = _tam_kernels(load_trained(run), dataset(work, "motion", setup, ctx.seed), setup)
    kernels = torch.cat([k.reshape(-1, k.shape[-1]) for k in per_layer])
    ts, td = _temporal_stats(kernels)
    across = _across_clip_variation(per_layer)
    rows.append({"model": "tam (adaptive)", "spread_init": None, "spread_trained": ts, "dc_share_init": None,
                 "dc_share_trained": td})
    figures.update({"tam_spread": ts, "tam_dc_share": td, "tam_across_clip_variation": across})
    i3d = rows[[r["model"] for r in rows].index("i3d")]
    held = i3d["spread_trained"] < ts and i3d["dc_share_trained"] > i3d["dc_share_init"]
    _kernel_plot(ctx, load_trained(trained(work, "motion", "i3d", setup, ctx.seed, _device(ctx))[1]), kernels)
    return Outcome(figures, held, tables={"temporal kernel statistics": rows},
                   notes="TAM kernels are softmax weights per clip and channel, measured on the validation clips; "
                         "3D kernels are all conv weights with a temporal extent > 1. "
                         f"TAM across-clip variation (std over clips of each layer's and channel's kernel / "
                         f"mean |kernel|): {across:.3f}.")


def _across_clip_variation(per_layer: list[torch.Tensor]) -> float:
    """How much a (layer, channel)'s kernel changes from clip to clip, relative to its size: the mean over
    layers, channels and taps of the std over clips, over the mean |kernel| (layers of any width)."""
    spread = torch.cat([k.std(0).flatten() for k in per_layer]).mean()
    size = torch.cat([k.mean(0).abs().flatten() for k in per_layer]).mean()
    return (spread / size).item()


@torch.no_grad()
def _tam_kernels(model: torch.nn.Module, data: dict, setup: Setup) -> list[torch.Tensor]:
    """The kernels each TAM layer produced on the validation clips: one (clips, channels, K) per layer."""
    from deepnotes.video.config import TrainConfig
    from deepnotes.video.data import make_loader, read_list
    from deepnotes.video.training import make_dataset

    cfg = TrainConfig(model="tam", train=str(data["train"]), out="", segments=setup.segments, input_size=setup.size,
                      cache=True, workers=0)
    loader = make_loader(make_dataset(cfg, read_list(data["val"]), False), 16, False)
    layers = [m for m in model.modules() if isinstance(m, TAM)]
    out: list[list[torch.Tensor]] = [[] for _ in layers]
    for batch in loader:
        model(batch.clips.flatten(0, 1))
        for kept, m in zip(out, layers, strict=True):
            kept.append(m.last_kernel)
    return [torch.cat(k) for k in out]


def _kernel_plot(ctx, i3d: torch.nn.Module, tam_kernels: torch.Tensor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k3 = _conv3d_kernels(i3d)
    k3 = k3 / k3.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, k, title in ((axes[0], k3, "I3D temporal weights (L1-normalised)"), (axes[1], tam_kernels, "TAM kernels")):
        pick = k[torch.randperm(len(k), generator=torch.Generator().manual_seed(0))[:200]]
        ax.plot(range(k.shape[1]), pick.T.numpy(), c="C0", alpha=0.08)
        ax.plot(range(k.shape[1]), k.mean(0).numpy(), c="C3", lw=2)
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(k.shape[1]), [str(j - k.shape[1] // 2) for j in range(k.shape[1])])
        ax.set_xlabel("time offset (frames)")
    ctx.save_plot(fig, "kernels")


def _flow_costs(frames: np.ndarray, repeat: int) -> dict[str, dict[str, float]]:
    """Per frame, for Farneback and DIS as ``deepnotes video flow`` computes and stores them: ms on one thread,
    and the bytes of the stored files (x/y JPEGs, ``flow.npz``) that :func:`flow.write_flow` writes."""
    import tempfile

    import cv2

    from deepnotes.video.two_stream.flow import compute_flow, make_flow_fn, write_flow

    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    pairs = list(zip(grey[:-1], grey[1:], strict=True))
    out = {}
    for name in ("farneback", "dis"):
        fn, times = make_flow_fn(name), []
        with threads(1):  # as the modules are timed (OpenCV would otherwise use every core)
            for _ in range(repeat):
                for a, b in pairs:
                    t0 = time.perf_counter()
                    fn(a, b)
                    times.append((time.perf_counter() - t0) * 1e3)
        flow = compute_flow(frames, name)
        with tempfile.TemporaryDirectory() as tmp:
            write_flow(Path(tmp), flow)
            files = list(Path(tmp).iterdir())
            jpeg = sum(f.stat().st_size for f in files if f.suffix == ".jpg")
            npz = sum(f.stat().st_size for f in files if f.suffix == ".npz")
        out[name] = {"ms_per_frame": float(np.median(times)), "jpeg_bytes_per_frame": jpeg / len(pairs),
                     "npz_bytes_per_frame": npz / len(pairs), "float32_bytes_per_frame": float(flow[0].nbytes)}
    return out


@torch.no_grad()
def _module_ms(name: str, setup: Setup, repeat: int) -> float:
    """Median time (ms) spent inside the temporal modules during one clip's forward pass, timed with hooks:
    a direct measurement, not the difference of two noisy whole-network timings."""
    model = model_for(name, setup).eval()
    x = torch.randn(1, 3, setup.segments, setup.size, setup.size)
    spent, start = [0.0], {}

    def pre(mod, args):
        start[id(mod)] = time.perf_counter()

    def post(mod, args, out):
        spent[0] += time.perf_counter() - start.pop(id(mod))

    for mod in temporal_modules(model):
        mod.register_forward_pre_hook(pre)
        mod.register_forward_hook(post)
    runs = []
    with threads(1):
        model(x)
        for _ in range(repeat):
            spent[0] = 0.0
            model(x)
            runs.append(spent[0] * 1e3)
    return float(np.median(runs))


@claim("video.flow_vs_feature_motion", "video",
       "Optical flow is expensive to compute and to store; motion taken from feature differences inside the "
       "network (TEA, STM, TDN) costs far less than computing flow.",
       "the CPU time per frame spent inside each model's temporal modules (timed with hooks) is below the "
       "per-frame time of both Farneback and DIS flow at the same frame size")
def flow_vs_feature_motion(ctx) -> Outcome:
    import cv2

    from deepnotes.video.data.synth import motion_video

    setup = _setup(ctx)
    big = ctx.pick(reference(setup, depth=18, width=16, size=112, segments=8, stem_stride=4),
                   reference(setup, depth=18, width=64, size=224, segments=8, stem_stride=4))
    video = motion_video(0, big.segments + 1, 32, np.random.default_rng(ctx.seed))
    frames = np.stack([cv2.resize(f, (big.size, big.size), interpolation=cv2.INTER_LINEAR) for f in video])
    flow = _flow_costs(frames, ctx.pick(2, 5))
    rgb_bytes = float(np.mean([len(cv2.imencode(".jpg", f[..., ::-1])[1]) for f in frames]))
    cpu = torch.device("cpu")
    tsn = costs(["tsn"], big, cpu, rounds=ctx.pick(3, 10))[0]
    rows = []
    for m in ("tea", "stm", "tdn", "tam", "tsm"):  # whole-model FLOPs; the latency compared is the modules' own
        flops = model_cost(model_for(m, big))["flops"]
        rows.append({"model": m, "extra_mflops_per_frame": (flops - tsn["flops"]) / big.segments / 1e6,
                     "extra_ms_per_frame": _module_ms(m, big, ctx.pick(3, 10)) / big.segments})
    slowest = min(flow["farneback"]["ms_per_frame"], flow["dis"]["ms_per_frame"])
    held = all(r["extra_ms_per_frame"] < slowest for r in rows)
    figures = {f"{k}_ms_per_frame": v["ms_per_frame"] for k, v in flow.items()}
    figures.update({f"{k}_{f}_bytes_per_frame": v[f"{f}_bytes_per_frame"] for k, v in flow.items() for f in ("jpeg", "npz")})
    figures["rgb_jpeg_bytes_per_frame"] = rgb_bytes
    figures.update({f"{r['model']}_extra_ms_per_frame": r["extra_ms_per_frame"] for r in rows})
    flow_rows = [{"method": k, **v} for k, v in flow.items()]
    return Outcome(figures, held, tables={f"optical flow at {big.size}x{big.size} (CPU)": flow_rows,
                                          f"motion modules in ResNet-{big.depth} w{big.width} at {big.size}x{big.size}":
                                          rows},
                   notes=f"TSN itself: {tsn['latency_ms'] / big.segments:.2f} ms and "
                         f"{tsn['flops'] / big.segments / 1e6:.0f} MFLOPs per frame. Flow also needs a second "
                         "network (the temporal stream) on top of its extraction cost; it is not counted here.")


from deepnotes.video import claims_two_stream  # noqa: E402,F401  (registers its claims under topic "video")
