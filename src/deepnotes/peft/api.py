"""The user-facing functions: apply a method, switch/merge adapters, count what trains."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from deepnotes.peft.adapters import AdapterLayer, inject_adapters
from deepnotes.peft.config import AdapterConfig, AnyConfig, LoraConfig, PrefixConfig, PromptConfig
from deepnotes.peft.lora.layer import LoraLayer, ModulesToSave
from deepnotes.peft.lora.model import inject_lora, lora_trainable, unwrap
from deepnotes.peft.prefix import install_prefix
from deepnotes.peft.prompt import install_prompt

STATE = "deepnotes_peft"


@dataclass
class PeftState:
    """What ``apply`` did to a model: the config of every named method and the active name."""

    configs: dict[str, AnyConfig] = field(default_factory=dict)
    active: str | None = None


def peft_state(model: nn.Module) -> PeftState:
    state = getattr(model, STATE, None)
    if state is None:
        raise ValueError(f"{type(model).__name__} has no deepnotes.peft method: call apply(model, config) first")
    return state


def apply(model: nn.Module, config: AnyConfig, name: str = "default") -> nn.Module:
    """Insert the method described by ``config`` into ``model`` (in place) under ``name``.

    Returns ``model``; afterwards only that method's parameters have ``requires_grad``. Several LoRA or
    adapter configs may be added under different names (see :func:`set_adapter`); prefix and prompt
    tuning are one per model.
    """
    state: PeftState = getattr(model, STATE, None) or PeftState()
    if name in state.configs:
        raise ValueError(f"adapter name {name!r} is already used on this model; pick another")
    if isinstance(config, LoraConfig):
        inject_lora(model, config, name)
    elif isinstance(config, AdapterConfig):
        inject_adapters(model, config, name)
    elif isinstance(config, PrefixConfig):
        install_prefix(model, config)
    elif isinstance(config, PromptConfig):
        install_prompt(model, config)
    else:
        raise TypeError(f"apply() takes LoraConfig, AdapterConfig, PrefixConfig or PromptConfig, not {type(config)}")
    state.configs[name] = config
    setattr(model, STATE, state)
    set_adapter(model, name)
    return model


def _wrappers(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, (LoraLayer, ModulesToSave, AdapterLayer))]


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
    if isinstance(config, LoraConfig):
        lora_trainable(model, name, config.bias)
    elif isinstance(config, AdapterConfig):
        for m in model.modules():
            if isinstance(m, AdapterLayer) and name in m.adapters:
                m.adapters[name].requires_grad_(True)
    elif isinstance(config, PrefixConfig):
        model.prefix_tuning.requires_grad_(True)
    else:
        model.prompt_tuning.embedding.requires_grad_(True)


def _lora_layers(model: nn.Module) -> list[LoraLayer]:
    state = peft_state(model)
    config = state.configs[state.active]
    if not isinstance(config, LoraConfig):
        raise ValueError(
            f"merge applies to LoRA only; adapter {state.active!r} is {config.method} "
            "(bottleneck adapters are nonlinear and prefixes are extra keys: neither folds into a weight)"
        )
    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def merge(model: nn.Module) -> nn.Module:
    """Add the active LoRA update into the base weights: W <- W + (alpha / r) B A."""
    for m in _lora_layers(model):
        m.merge()
    return model


def unmerge(model: nn.Module) -> nn.Module:
    """Subtract merged LoRA updates from the base weights again."""
    for m in _lora_layers(model):
        m.unmerge()
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge the active LoRA adapter and remove every wrapper: a plain transformers model again."""
    merge(model)
    unwrap(model)
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
        return f"trainable params: {self.trainable:,} || all params: {self.total:,} || trainable%: {self.percent:.4f}"


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
