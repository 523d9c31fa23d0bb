"""What the video claims share: the experiment size of a report, its folder of trained runs, one training
call with the claims' fixed settings (and a variant of it: another seed or a changed setting, trained once
per report too), and a latency measure."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from deepnotes.core import RunDir
from deepnotes.core.claims import ClaimContext
from deepnotes.core.timing import time_call
from deepnotes.video.config import TrainConfig
from deepnotes.video.experiments import FULL, QUICK, Setup, dataset, threads, train_config, trained
from deepnotes.video.training import train


def setup_of(ctx: ClaimContext) -> Setup:
    """The data and model size of the recognition claims (quick or full)."""
    return ctx.pick(QUICK, FULL)


def work_dir(ctx: ClaimContext) -> Path:
    """Where the recognition claims keep their trained runs (shared: claims 1-3 train each model once)."""
    path = ctx.out_dir / "work" / "video-runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def top1(ctx: ClaimContext, kind: str, model: str) -> float:
    """Last-epoch validation top-1 of ``model`` trained on the synthetic ``kind`` data (trained once)."""
    metrics, _ = trained(work_dir(ctx), kind, model, setup_of(ctx), ctx.seed, str(ctx.device))
    return metrics[-1]["top1"]


def top1_with(ctx: ClaimContext, kind: str, model: str, seed: int, tag: str = "", **changes) -> float:
    """Last-epoch top-1 of ``model`` on ``kind`` at ``seed`` (its own synthetic data set and initialisation),
    trained as :func:`top1` trains (the same settings) with the :class:`TrainConfig` fields ``changes``
    (e.g. ``consensus="max"``), under a run folder named by ``tag``; trained once per report. With no
    changes, at the report's seed, it is :func:`top1`'s own run."""
    setup = setup_of(ctx)
    if not changes and seed == ctx.seed:
        return top1(ctx, kind, model)
    out = work_dir(ctx) / f"run-{kind}-{model}{tag and '-' + tag}-{setup.key()}-s{seed}"
    run = RunDir(out)
    if len(run.metrics) == setup.epochs and run.has_checkpoint():
        return run.metrics[-1]["top1"]
    cfg = replace(train_config(model, dataset(work_dir(ctx), kind, setup, seed), out, setup, seed,
                               str(ctx.device)), **changes)
    cfg.resume = run.has_checkpoint()
    with threads(1):
        return train(cfg)[-1]["top1"]


def train_run(ctx: ClaimContext, model: str, train_list, val_list, out, seed: int | None = None,
              **kw) -> list[dict]:
    """Train ``model`` in-process (no worker processes, frames cached) on the claim's device and ``seed``
    (the claim's when None); ``kw`` are further :class:`TrainConfig` fields. Returns the per-epoch
    records.

    The residual init is the setup's (``Setup.zero_init_residual``: gamma 0 quick, 1 full), as for every
    other video claim, not ``video train``'s default: a claim's protocol does not move with a CLI default."""
    kw.setdefault("zero_init_residual", setup_of(ctx).zero_init_residual)
    cfg = TrainConfig(model=model, train=str(train_list), val=val_list and str(val_list), out=str(out),
                      workers=0, cache=True, device=str(ctx.device), seed=ctx.seed if seed is None else seed,
                      **kw)
    return train(cfg)


def latency_ms(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> float:
    """Inference time of ``model(x)`` in ms on ``device`` (2 warm-up calls, 5 timed)."""
    model = model.to(device).eval()
    x = x.to(device)
    with torch.no_grad():
        return time_call(lambda: model(x), device, warmup=2, repeat=5)
