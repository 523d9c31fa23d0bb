"""Optimizers (Adam with L2, AdamW with decoupled decay), schedules and stochastic approximation."""

from deepnotes.optim.schedule import cosine_with_warmup

__all__ = ["cosine_with_warmup"]
