"""Full fine-tuning: the reference every PEFT method is compared with. Nothing is inserted, every weight
trains, and the run's checkpoint (not an adapter folder) holds the trained model."""

from __future__ import annotations

from typing import Any

from torch import nn

from deepnotes.peft.methods.base import PeftMethod


def default_config(_model: nn.Module, opts: dict[str, Any]) -> None:
    if opts:
        raise ValueError(f"method_config: full fine-tuning has no options, got {', '.join(map(repr, opts))}")
    return None


METHOD = PeftMethod(config=None, lr=5e-4, default_config=default_config)
