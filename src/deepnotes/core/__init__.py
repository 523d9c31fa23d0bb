"""Shared ground for every topic: seeding, devices, safe IO, run folders, progress, claims and the report."""

from deepnotes.core.checkpoint import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_checkpoint,
    save_checkpoint,
)
from deepnotes.core.claims import Claim, ClaimContext, Outcome, claim, registered_claims
from deepnotes.core.device import pick_device
from deepnotes.core.paths import resolve_inside
from deepnotes.core.progress import progress
from deepnotes.core.rundir import RunDir
from deepnotes.core.seed import seed_everything, seeded_generator, set_torch_rng_state, torch_rng_state

__all__ = [
    "Claim",
    "ClaimContext",
    "Outcome",
    "RunDir",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "claim",
    "load_checkpoint",
    "pick_device",
    "progress",
    "registered_claims",
    "resolve_inside",
    "save_checkpoint",
    "seed_everything",
    "seeded_generator",
    "set_torch_rng_state",
    "torch_rng_state",
]
