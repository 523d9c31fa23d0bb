"""What a PEFT method supplies to the registry (:class:`PeftMethod`), and helpers the methods share.

A method is one module under ``deepnotes/peft/methods/`` that builds a :class:`PeftMethod`; one line in
``methods/__init__.py`` registers it by name. ``apply``, ``set_adapter``, ``save_adapter``/``load_adapter``,
``peft train`` and its ``--method`` choices all read the registry, so nothing else names the method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# peft's prefix of every LoRA / adapter key in adapter_model.safetensors (PeftModel wraps the base model)
PEFT_PREFIX = "base_model.model."

Tensors = dict[str, torch.Tensor]


def nothing(*_args: Any) -> None:
    """The default of an optional step a method does not need."""


def as_read(_model: nn.Module, config: Any, tensors: Tensors, _source: str) -> tuple[Any, Tensors]:
    """The default of :attr:`PeftMethod.read`: the folder holds the config and tensors ``apply`` makes."""
    return config, tensors


def same_keys(keys: list[str], _name: str, _model: nn.Module) -> dict[str, str]:
    """The default of :attr:`PeftMethod.model_keys`: file keys are the model's state-dict keys."""
    return {k: k for k in keys}


def set_child(model: nn.Module, path: str, new: nn.Module) -> None:
    """Replace the submodule at dotted ``path`` by ``new`` (how wrappers are put in and taken out)."""
    parent_name, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def config_overrides(cls: type, opts: dict[str, Any], method: str) -> dict[str, Any]:
    """``opts`` checked against the fields of ``cls``: an unknown key (e.g. a LoRA option given to prefix
    tuning) is a ValueError naming it and the valid ones."""
    valid = [f for f in cls.__dataclass_fields__ if f != "method"]
    unknown = [k for k in opts if k not in valid and k != "method"]
    if unknown:
        raise ValueError(f"method_config: {method} has no option {unknown[0]!r}; valid: {', '.join(valid)}")
    return {k: v for k, v in opts.items() if k != "method"}


@dataclass(frozen=True)
class PeftMethod:
    """One PEFT method: its config type, how it goes into a model, what trains and how it is stored.

    - ``config``: its config dataclass (``None``: nothing is inserted, every weight trains: full fine-tuning);
    - ``lr``: the default learning rate of ``deepnotes peft train``;
    - ``default_config(model, opts)``: the config ``peft train`` uses for ``model`` (``opts`` override
      fields);
    - ``inject(model, config, name)``: insert the method into ``model`` in place under adapter ``name``;
    - ``trainable(model, config, name)``: set ``requires_grad`` on that adapter's parameters (all others
      were frozen just before);
    - ``save(model, config, name)``: ``(adapter_config.json dict, {file key: tensor})`` in peft's layout;
    - ``read(model, config, tensors, source)``: a folder's config and tensors turned into what ``inject``
      makes (layout conversions, checks naming ``source``), before ``apply``;
    - ``model_keys(file_keys, name, model)``: ``{file key: model state-dict key}`` after ``apply``;
    - ``peft_type``: ``adapter_config.json``'s ``peft_type`` (how :func:`load_adapter` recognises it);
    - ``wrappers``: module types wrapping base layers that hold several named adapters (``set_adapter``
      switches them);
    - ``merge_layers(model)``: the layers that fold the update into their weights (``None``: cannot merge);
      ``unload(model)``: remove the wrappers again;
    - ``finish(model)``: after training, before saving (prefix tuning folds its MLP into the table);
    - ``knobs``: ``{peft train option: config field}``, the method's settings ``peft train`` takes as flags
      and top-level config keys (``--r`` -> ``r``; ``--prefix-length`` -> ``num_virtual_tokens``).
    """

    config: type | None
    lr: float
    default_config: Callable[[nn.Module, dict[str, Any]], Any]
    inject: Callable[[nn.Module, Any, str], Any] = nothing
    trainable: Callable[[nn.Module, Any, str], None] = nothing
    save: Callable[[nn.Module, Any, str], tuple[dict[str, Any], Tensors]] | None = None
    read: Callable[[nn.Module, Any, Tensors, str], tuple[Any, Tensors]] = as_read
    model_keys: Callable[[list[str], str, nn.Module], dict[str, str]] = same_keys
    peft_type: str | None = None
    wrappers: tuple[type, ...] = ()
    merge_layers: Callable[[nn.Module], list[nn.Module]] | None = None
    unload: Callable[[nn.Module], None] = nothing
    finish: Callable[[nn.Module], None] = nothing
    knobs: Mapping[str, str] = field(default_factory=dict)
