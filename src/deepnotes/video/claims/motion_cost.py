"""Claim 4 of the video topic: optical flow costs far more to compute and store than the motion a 2D
network takes from its own feature differences."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from deepnotes.core import Outcome, claim
from deepnotes.video.claims.common import setup_of
from deepnotes.video.data.synth import motion_video
from deepnotes.video.experiments import Setup, costs, model_for, reference, threads
from deepnotes.video.models import MODELS, model_cost
from deepnotes.video.models.base import temporal_modules
from deepnotes.video.two_stream.flow import compute_flow, make_flow_fn, write_flow

# every temporal 2D module of the registry; TSM (a shift: no motion features, no FLOPs) last, for reference
MODULES = (*[m for m in MODELS.names(family="2d", temporal=True) if m != "tsm"], "tsm")


def _flow_costs(frames: np.ndarray, repeat: int) -> dict[str, dict[str, float]]:
    """Per frame, for Farneback and DIS as ``deepnotes video flow`` computes and stores them: ms on one
    thread, and the bytes of the stored files (x/y JPEGs, ``flow.npz``) that :func:`write_flow` writes."""
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
                     "npz_bytes_per_frame": npz / len(pairs),
                     "float32_bytes_per_frame": float(flow[0].nbytes)}
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
    setup = setup_of(ctx)
    big = ctx.pick(reference(setup, depth=18, width=16, size=112, segments=8, stem_stride=4),
                   reference(setup, depth=18, width=64, size=224, segments=8, stem_stride=4))
    video = motion_video(0, big.segments + 1, 32, np.random.default_rng(ctx.seed))
    frames = np.stack([cv2.resize(f, (big.size, big.size), interpolation=cv2.INTER_LINEAR) for f in video])
    flow = _flow_costs(frames, ctx.pick(2, 5))
    rgb_bytes = float(np.mean([len(cv2.imencode(".jpg", f[..., ::-1])[1]) for f in frames]))
    cpu = torch.device("cpu")
    tsn = costs(["tsn"], big, cpu, rounds=ctx.pick(3, 10))[0]
    rows = []
    for m in MODULES:  # whole-model FLOPs; the latency compared is the modules' own
        flops = model_cost(model_for(m, big))["flops"]
        rows.append({"model": m, "extra_mflops_per_frame": (flops - tsn["flops"]) / big.segments / 1e6,
                     "extra_ms_per_frame": _module_ms(m, big, ctx.pick(3, 10)) / big.segments})
    slowest = min(flow["farneback"]["ms_per_frame"], flow["dis"]["ms_per_frame"])
    held = all(r["extra_ms_per_frame"] < slowest for r in rows)
    figures = {f"{k}_ms_per_frame": v["ms_per_frame"] for k, v in flow.items()}
    figures.update({f"{k}_{f}_bytes_per_frame": v[f"{f}_bytes_per_frame"]
                    for k, v in flow.items() for f in ("jpeg", "npz")})
    figures["rgb_jpeg_bytes_per_frame"] = rgb_bytes
    figures.update({f"{r['model']}_extra_ms_per_frame": r["extra_ms_per_frame"] for r in rows})
    flow_rows = [{"method": k, **v} for k, v in flow.items()]
    tables = {f"optical flow at {big.size}x{big.size} (CPU)": flow_rows,
              f"motion modules in ResNet-{big.depth} w{big.width} at {big.size}x{big.size}": rows}
    notes = (f"TSN itself: {tsn['latency_ms'] / big.segments:.2f} ms and "
             f"{tsn['flops'] / big.segments / 1e6:.0f} MFLOPs per frame. Flow also needs a second "
             "network (the temporal stream) on top of its extraction cost; it is not counted here.")
    return Outcome(figures, held, tables=tables, notes=notes)
