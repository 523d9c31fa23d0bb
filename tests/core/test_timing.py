"""Timing helpers used by the benchmarks: call counts, order and what is returned (not how fast)."""

from __future__ import annotations

import time

import torch

from deepnotes.core.timing import count_flops, time_call, time_interleaved


def test_time_interleaved_runs_round_robin_and_returns_medians():
    calls: list[str] = []

    def make(name: str, seconds: float):
        def fn():
            calls.append(name)
            time.sleep(seconds)
        return fn

    out = time_interleaved({"fast": make("fast", 0.0), "slow": make("slow", 0.02)}, warmup=1, rounds=3)
    assert calls == ["fast", "slow"] + ["fast", "slow"] * 3  # warm-up of each, then alternating rounds
    assert set(out) == {"fast", "slow"}
    assert out["slow"] >= 20.0 > out["fast"]  # milliseconds, the sleep is a lower bound


def test_time_call_counts_warmup_and_repeats():
    n = []
    time_call(lambda: n.append(1), "cpu", warmup=2, repeat=5)
    assert len(n) == 7


def test_count_flops_of_a_linear_layer_is_two_per_multiply_add():
    layer = torch.nn.Linear(8, 4, bias=False)
    assert count_flops(layer, torch.randn(3, 8)) == 2 * 3 * 8 * 4
