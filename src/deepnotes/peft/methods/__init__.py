"""The PEFT methods, one module each, in the registry that ``apply``, the adapter files and ``peft train``
read (``--method`` lists its names).

Adding a method: write ``methods/<name>.py`` holding its config dataclass, how it goes into a model and how
it is stored, as a :class:`~deepnotes.peft.methods.base.PeftMethod` (``prompt.py`` is the shortest example),
and register it below with one line.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from deepnotes.core.registry import Registry
from deepnotes.peft.methods import adapter, full, lora, prefix, prompt
from deepnotes.peft.methods.adapter import AdapterConfig
from deepnotes.peft.methods.base import PeftMethod
from deepnotes.peft.methods.lora.config import LoraConfig
from deepnotes.peft.methods.prefix import PrefixConfig
from deepnotes.peft.methods.prompt import PromptConfig

METHODS: Registry[PeftMethod] = Registry("PEFT method")
METHODS.register("lora", lora.METHOD)
METHODS.register("adapter", adapter.METHOD)
METHODS.register("prefix", prefix.METHOD)
METHODS.register("prompt", prompt.METHOD)
METHODS.register("full", full.METHOD)

# adapter_config.json's peft_type -> our config class
PEFT_TYPES: dict[str, type] = {m.peft_type: m.config for m in METHODS.values() if m.peft_type and m.config}


def method_of(config: Any) -> tuple[str, PeftMethod]:
    """(name, method) of a config instance; a type no registered method takes is a TypeError."""
    for name, method in METHODS.items():
        if method.config is not None and isinstance(config, method.config):
            return name, method
    valid = ", ".join(m.config.__name__ for m in METHODS.values() if m.config is not None)
    raise TypeError(f"{type(config).__name__} is the config of no registered PEFT method; valid: {valid}")


def method_config(method: str, model: nn.Module, /, **opts: Any) -> Any:
    """The default config of ``method`` for ``model`` (``opts`` override fields); None for ``full``."""
    return METHODS[method].default_config(model, opts)


def wrapper_types() -> tuple[type, ...]:
    """Every module type that wraps a base layer with named adapters (what ``set_adapter`` switches)."""
    return tuple(t for m in METHODS.values() for t in m.wrappers)


def config_from_peft(d: dict[str, Any], source: str = "adapter_config.json") -> Any:
    """Parse an ``adapter_config.json`` dict into one of our configs (errors name the field)."""
    kind = d.get("peft_type")
    if kind not in PEFT_TYPES:
        raise ValueError(f"{source}: field peft_type={kind!r} is not one of {', '.join(PEFT_TYPES)}")
    try:
        return PEFT_TYPES[kind].from_peft(d)
    except KeyError as exc:
        raise ValueError(f"{source}: field {exc.args[0]!r} is missing") from exc
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc


__all__ = ["METHODS", "PEFT_TYPES", "AdapterConfig", "LoraConfig", "PeftMethod", "PrefixConfig",
           "PromptConfig", "config_from_peft", "method_config", "method_of", "wrapper_types"]
