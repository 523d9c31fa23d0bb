"""Optimizers (Adam with L2, AdamW with decoupled decay), schedules and stochastic approximation.

``adam`` holds the optimizer classes, ``update`` their eager update (one tensor at a time or
torch._foreach_*), ``fused`` the torch.compile'd one; ``stochastic`` and ``schedule_sa`` the
Robbins-Monro and Kiefer-Wolfowitz iterations with their step-size schedules.
"""

from deepnotes.optim.adam import Adam, AdamW
from deepnotes.optim.schedule import cosine_with_warmup
from deepnotes.optim.schedule_sa import Constant, Power, check_robbins_monro, harmonic, parse_schedule
from deepnotes.optim.stochastic import (
    IncrementalMean,
    Trace,
    kiefer_wolfowitz,
    robbins_monro,
    sgd_as_robbins_monro,
)

__all__ = [
    "Adam",
    "AdamW",
    "Constant",
    "IncrementalMean",
    "Power",
    "Trace",
    "check_robbins_monro",
    "cosine_with_warmup",
    "harmonic",
    "kiefer_wolfowitz",
    "parse_schedule",
    "robbins_monro",
    "sgd_as_robbins_monro",
]
