"""Timing helpers for benchmarks and cost claims (never for timed tests)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from deepnotes.core.device import synchronize


def time_call(fn: Callable[[], object], device: torch.device | str = "cpu", warmup: int = 3, repeat: int = 10) -> float:
    """Median wall time of ``fn()`` in milliseconds, synchronising the device around each call."""
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def count_flops(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Forward FLOPs of ``model(*inputs)`` counted by ``torch.utils.flop_counter`` (a multiply-add is 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    model.train(was_training)
    return int(counter.get_total_flops())


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
