"""Seeding and determinism."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices).

    ``deterministic=True`` also asks torch for deterministic kernels; ops without one then raise,
    which is what you want when checking that two runs agree bit for bit.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def seeded_generator(seed: int) -> np.random.Generator:
    """A numpy Generator for data synthesis: independent of the global state, so data never drifts."""
    return np.random.default_rng(seed)


def torch_rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """torch's global generator states (CPU, and every CUDA device once CUDA is in use).

    Dropout and ``torch.rand*`` without a generator draw from these, so a step-based trainer stores them in
    its checkpoint and a resumed run draws the same masks as one that never stopped. Our data pipelines
    seed their own generators and need nothing from here.
    """
    state: dict[str, torch.Tensor | list[torch.Tensor]] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_torch_rng_state(state: dict) -> None:
    """Restore what :func:`torch_rng_state` returned (tensors may come back on any device)."""
    torch.set_rng_state(state["cpu"].cpu())
    if torch.cuda.is_available():
        # a run resumed on fewer GPUs restores the devices it has; one that used no GPU leaves them as seeded
        for index, s in enumerate(state.get("cuda", [])[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu(), index)
