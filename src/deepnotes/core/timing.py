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


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device | str = "cpu", warmup: int = 2,
                     rounds: int = 10) -> dict[str, float]:
    """Median milliseconds of each ``fns[name]()``, timed round-robin (one call of each per round).

    Interleaving makes the ratios between entries robust: a slow phase of the machine (other jobs, clock
    changes, allocator growth) hits every entry alike instead of whichever happened to run then.
    """
    device = torch.device(device)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(time_call(fn, device, warmup=0, repeat=1))
    return {name: statistics.median(v) for name, v in samples.items()}


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
