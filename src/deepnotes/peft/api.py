"""The user-facing functions: apply a method, switch/merge adapters, count what trains.

Which method a config belongs to is the method registry's answer (:mod:`deepnotes.peft.methods`): a config
type no registered method takes is refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from deepnotes.peft.methods import method_of, wrapper_types

STATE = "deepnotes_peft"


@dataclass
class PeftState:
    """What ``apply`` did to a model: the config of every named method and the active name."""

    configs: dict[str, Any] = field(default_factory=dict)
    active: str | None = None


def peft_state(model: nn.Module) -> PeftState:
    state = getattr(model, STATE, None)
    if state is None:
        raise ValueError(f"{type(model).__name__} has no deepnotes.peft method: "
                         "call apply(model, config) first")
    return state


def apply(model: nn.Module, config: Any, name: str = "default") -> nn.Module:
    """Insert the method described by ``config`` into ``model`` (in place) under ``name``.

    Returns ``model``; afterwards only that method's parameters have ``requires_grad``. Several LoRA or
    adapter configs may be added under different names (see :func:`set_adapter`); prefix and prompt
    tuning are one per model. A config of no registered method is a TypeError.
    """
    _, method = method_of(config)
    state: PeftState = getattr(model, STATE, None) or PeftState()
    if name in state.configs:
        raise ValueError(f"adapter name {name!r} is already used on this model; pick another")
    method.inject(model, config, name)
    state.configs[name] = config
    setattr(model, STATE, state)
    set_adapter(model, name)
    return model


def _wrappers(model: nn.Module) -> list[nn.Module]:
    kinds = wrapper_types()
    return [m for m in model.modules() if isinstance(m, kinds)]


def set_adapter(model: nn.Module, name: str) -> None:
    """Make adapter ``name`` the one used in forward passes and the only one that trains."""
    state = peft_state(model)
    if name not in state.configs:
        raise ValueError(f"no adapter named {name!r}; this model has: {', '.join(state.configs)}")
    for m in _wrappers(model):
        m.active_adapter = name if name in m.adapter_names() else None
    state.active = name
    config = state.configs[name]
    for p in model.parameters():
        p.requires_grad_(False)
    method_of(config)[1].trainable(model, config, name)


def _merge_layers(model: nn.Module) -> list[nn.Module]:
    state = peft_state(model)
    name, method = method_of(state.configs[state.active])
    if method.merge_layers is None:
        raise ValueError(
            f"merge applies to LoRA only; adapter {state.active!r} is {name} "
            "(bottleneck adapters are nonlinear and prefixes are extra keys: neither folds into a weight)"
        )
    return method.merge_layers(model)


def merge(model: nn.Module) -> nn.Module:
    """Add the active LoRA update into the base weights: W <- W + (alpha / r) B A."""
    for m in _merge_layers(model):
        m.merge()
    return model


def unmerge(model: nn.Module) -> nn.Module:
    """Subtract merged LoRA updates from the base weights again."""
    for m in _merge_layers(model):
        m.unmerge()
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge the active LoRA adapter and remove every wrapper: a plain transformers model again."""
    merge(model)
    state = peft_state(model)
    method_of(state.configs[state.active])[1].unload(model)
    delattr(model, STATE)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@dataclass
class TrainableReport:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / max(self.total, 1)

    def __str__(self) -> str:
        return (f"trainable params: {self.trainable:,} || all params: {self.total:,} || "
                f"trainable%: {self.percent:.4f}")


def trainable_parameters(model: nn.Module) -> TrainableReport:
    """Trainable and total parameter counts (tied weights counted once)."""
    seen, trainable, total = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return TrainableReport(trainable, total)
