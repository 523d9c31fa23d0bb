"""Timing helpers for benchmarks and cost claims (never for timed tests)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from deepnotes.core.device import synchronize


def time_call(fn: Callable[[], object], device: torch.device | str = "cpu", warmup: int = 3,
              repeat: int = 10) -> float:
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


def time_interleaved(fns: dict[str, Callable[[], object]], device: torch.device | str = "cpu",
                     warmup: int = 2, rounds: int = 10) -> dict[str, float]:
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


def kernel_profile(fn: Callable[[], object], device: torch.device | str, calls: int = 5,
                   top: int = 5) -> tuple[float, list[tuple[str, float, int]]]:
    """Device kernel time per call of ``fn()`` and its ``top`` kernels as (name, ms per call, launches per
    call), from torch.profiler. Compared with the call's wall time it says whether the device's work or the
    host's (Python, dispatch, launches) sets the pace. On a CPU there are no device kernels: (0.0, [])."""
    from torch.profiler import ProfilerActivity, profile

    device = torch.device(device)
    if device.type != "cuda":
        return 0.0, []
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        synchronize(device)
    # user annotations (e.g. "Optimizer.step#AdamW.step") span kernels on the GPU timeline: not kernels
    kernels = [e for e in prof.key_averages() if e.device_type.name == "CUDA" and not e.is_user_annotation]
    total = sum(e.self_device_time_total for e in kernels) / calls / 1e3
    ranked = sorted(kernels, key=lambda e: e.self_device_time_total, reverse=True)[:top]
    return total, [(e.key, e.self_device_time_total / calls / 1e3, e.count // calls) for e in ranked]


def print_kernel_profile(name: str, fn: Callable[[], object], device: torch.device | str, wall_ms: float,
                         calls: int = 5, top: int = 5) -> None:
    """One line of kernel time against ``wall_ms`` for ``fn``, then its top kernels (CUDA only)."""
    total, ranked = kernel_profile(fn, device, calls, top)
    if not ranked:
        print(f"profile {name}: no device kernels recorded (device {device})")
        return
    print(f"profile {name}: wall {wall_ms:.2f} ms/call, device kernels {total:.2f} ms/call")
    for key, ms, count in ranked:
        print(f"    {ms:7.3f} ms  x{count:<4d} {key[:90]}")


def count_flops(model: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Forward FLOPs of ``model(*inputs)`` counted by ``torch.utils.flop_counter`` (a multiply-add: 2 FLOPs).

    The counter sees matrix products and convolutions only. A module that computes a convolution from
    elementwise multiply-adds (a depthwise temporal conv written as shifted products) declares what the
    counter cannot see with a method ``extra_flops(inputs, output) -> int``; it is added here, so such a
    module counts what the equivalent ``Conv3d`` would.
    """
    from torch.utils.flop_counter import FlopCounterMode

    extra = 0

    def add(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal extra
        extra += int(module.extra_flops(args, output))

    hooks = [m.register_forward_hook(add) for m in model.modules() if hasattr(m, "extra_flops")]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*inputs)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return int(counter.get_total_flops()) + extra


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
