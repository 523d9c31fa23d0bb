"""Optimizers (Adam with L2, AdamW with decoupled decay), schedules and stochastic approximation."""

from deepnotes.optim.adam import Adam, AdamW
from deepnotes.optim.schedule import cosine_with_warmup

__all__ = ["Adam", "AdamW", "cosine_with_warmup"]
