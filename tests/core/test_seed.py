"""Seeding, and the RNG state a checkpoint carries so dropout continues where it stopped."""

from __future__ import annotations

import numpy as np
import torch

from deepnotes.core import (
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_torch_rng_state,
    torch_rng_state,
)


def test_seed_everything_repeats_torch_and_numpy():
    seed_everything(3)
    a = torch.rand(4), np.random.rand(2)
    seed_everything(3)
    b = torch.rand(4), np.random.rand(2)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_rng_state_survives_a_checkpoint_round_trip(tmp_path):
    seed_everything(0)
    torch.rand(7)
    save_checkpoint(tmp_path / "c.safetensors", {"rng": torch_rng_state()}, {})
    expected = torch.nn.functional.dropout(torch.ones(64), 0.5, training=True)
    torch.rand(100)  # the process moves on (or dies); a resumed one restores the saved state
    state, _ = load_checkpoint(tmp_path / "c.safetensors")
    set_torch_rng_state(state["rng"])
    assert torch.equal(torch.nn.functional.dropout(torch.ones(64), 0.5, training=True), expected)
