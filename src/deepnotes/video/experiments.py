"""Shared experiment plumbing for the video claims and benchmark: sized setups, synthetic datasets and
trained runs cached on disk (so claims 1-3 train each model once per report)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import torch

from deepnotes.core import RunDir
from deepnotes.core.timing import count_flops, count_parameters, time_interleaved
from deepnotes.video.config import TrainConfig
from deepnotes.video.data.synth import synth_dataset
from deepnotes.video.models import build_model
from deepnotes.video.training import load_run, train


@dataclass(frozen=True)
class Setup:
    """Data and model size of one experiment."""

    frames: int = 8  # frames per synthetic video
    size: int = 16  # synthetic frame size (and network input)
    n_per_class: int = 24
    val_per_class: int = 8
    segments: int = 4  # frames per clip
    epochs: int = 12
    batch_size: int = 16
    lr: float = 5e-3
    depth: int = 10
    width: int = 8
    stem_stride: int = 1
    # the synthetic kind the claims' "motion" (order-only) data is drawn from: ``motion_hard`` (a textured
    # background, a random polygon and colour in every video) or the plain ``motion`` set
    motion: str = "motion"
    zero_init_residual: bool = True  # residual branches' last BN at gamma 0 (see TrainConfig)

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]


@contextmanager
def threads(n: int = 1) -> Iterator[None]:
    """Run tiny models (torch) and OpenCV on ``n`` CPU threads: their ops are too small to gain from more,
    and on a shared machine extra threads mostly wait for each other (20-30x slower steps were measured
    under load); timings compared in one claim then run alike."""
    before, before_cv = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        cv2.setNumThreads(before_cv)


# QUICK stays on the plain ``motion`` set (and the old zero-init): at its size (8 frames of 16 px, 24 videos
# a class, 12 epochs) a texture already closes most of TSM's lead over TSN and random shapes leave TSM at
# chance (docs/video.md, "Order on harder data"). FULL draws the order-only data from ``motion_hard`` at
# 64 px with `video train`'s init (residual branches and TDN's stem differences live from the start) and its
# learning rate: at 3e-3 TSM never took off at one seed in 20 epochs (0.147) and the first FULL run's TSM
# ended at 0.40 after 30, where 1e-3 reaches 0.73-0.89 (docs/video.md, "Order on harder data")
QUICK = Setup()
FULL = Setup(frames=16, size=64, n_per_class=150, val_per_class=50, segments=8, epochs=30, depth=18,
             width=16, stem_stride=2, lr=1e-3, motion="motion_hard", zero_init_residual=False)


def dataset(work: Path, kind: str, setup: Setup, seed: int) -> dict[str, Path]:
    """The synthetic ``kind`` dataset for ``setup`` (written once under ``work``); ``kind="motion"`` is the
    order-only set ``setup.motion`` names."""
    kind = setup.motion if kind == "motion" else kind
    size = f"{setup.frames}x{setup.size}-{setup.n_per_class}-{setup.val_per_class}"
    root = Path(work) / f"data-{kind}-{size}-s{seed}"
    done = root / "val.txt"
    if done.is_file():
        return {"train": root / "train.txt", "val": done, "classes": root / "classes.txt"}
    return synth_dataset(kind, root, setup.n_per_class, setup.val_per_class, setup.frames, setup.size, seed)


def train_config(model: str, data: dict[str, Path], out: Path, setup: Setup, seed: int,
                 device: str) -> TrainConfig:
    """The claims' training settings for ``model`` at ``setup`` (in-process, frames cached, one validation
    after the last epoch)."""
    return TrainConfig(model=model, train=str(data["train"]), val=str(data["val"]), out=str(out),
                       epochs=setup.epochs, batch_size=setup.batch_size, lr=setup.lr, warmup_epochs=0.5,
                       segments=setup.segments, input_size=setup.size, crop="center", depth=setup.depth,
                       width=setup.width, stem_stride=setup.stem_stride, dropout=0.0, cache=True, seed=seed,
                       device=device, workers=0, eval_every=setup.epochs,
                       zero_init_residual=setup.zero_init_residual)


def trained(work: Path, kind: str, model: str, setup: Setup, seed: int,
            device: str) -> tuple[list[dict], Path]:
    """Train ``model`` on ``kind`` (or reuse the finished run); returns (per-epoch metrics, run folder)."""
    out = Path(work) / f"run-{kind}-{model}-{setup.key()}-s{seed}"
    run = RunDir(out)
    if len(run.metrics) == setup.epochs and run.has_checkpoint():
        return run.metrics, out
    cfg = train_config(model, dataset(work, kind, setup, seed), out, setup, seed, device)
    cfg.resume = run.has_checkpoint()
    with threads(1):
        return train(cfg), out


def load_trained(run_dir: Path, device: str = "cpu") -> torch.nn.Module:
    return load_run(run_dir, torch.device(device))[0]


def model_for(name: str, setup: Setup, num_classes: int = 8) -> torch.nn.Module:
    """A freshly initialised ``name`` sized by ``setup``."""
    return build_model(name, num_classes, num_segments=setup.segments, depth=setup.depth, width=setup.width,
                       stem_stride=setup.stem_stride, input_size=setup.size,
                       zero_init_residual=setup.zero_init_residual)


def costs(names: list[str], setup: Setup, device: torch.device, rounds: int = 5) -> list[dict[str, Any]]:
    """Per model: parameters, forward FLOPs of one clip (1, 3, T, S, S) and median latency per clip (ms, one
    CPU thread), the models timed round-robin so that a slow phase of a shared machine hits all alike.

    Latency is timed on a batch of 2 clips and divided by 2: with a batch of 1, PyTorch's CPU convolution
    dispatch sends 3D convolutions whose kernel ends in 1 x 1 (I3D's 3x1x1, every 1x1x1) to its native
    ``slow_conv3d`` instead of oneDNN (profiled: 19 of I3D's 20 convolutions, 2x its per-clip time),
    which would inflate the 3D baselines. The 2D models fold time into the batch and never hit that path.
    """
    models = {n: model_for(n, setup).to(device).eval() for n in names}
    x = torch.randn(2, 3, setup.segments, setup.size, setup.size, device=device)
    with torch.no_grad(), threads(1):
        ms = time_interleaved({n: (lambda m=m: m(x)) for n, m in models.items()}, device, warmup=2,
                              rounds=rounds)
    return [{"model": n, "params": count_parameters(m), "flops": count_flops(m, x[:1]),
             "latency_ms": ms[n] / 2} for n, m in models.items()]


def reference(setup: Setup, **changes) -> Setup:
    return replace(setup, **changes)
