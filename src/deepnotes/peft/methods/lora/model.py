"""Insert LoRA into a model: find the target layers, wrap them, freeze everything else."""

from __future__ import annotations

import re
import warnings

from torch import nn

from deepnotes.peft.methods.base import set_child
from deepnotes.peft.methods.lora.config import LoraConfig
from deepnotes.peft.methods.lora.fused import Siblings
from deepnotes.peft.methods.lora.layer import LoraLayer, ModulesToSave, layer_kind
from deepnotes.peft.methods.targets import layout


def name_matches(name: str, targets: list[str] | str) -> bool:
    """peft's rule: a string is a regex on the full path; a list entry matches the path or its tail."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def describe_modules(model: nn.Module, limit: int = 40) -> str:
    names = [n for n, m in model.named_modules() if n and layer_kind(m)]
    more = f" ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def inject_lora(model: nn.Module, config: LoraConfig, name: str) -> list[str]:
    """Wrap every target layer of ``model`` (in place) with a LoRA update called ``name``.

    Returns the wrapped module paths. A pattern that matches nothing raises ``ValueError`` listing the
    model's wrappable modules.
    """
    internal = {"base_layer", "lora_A", "lora_B", "modules_to_save", "original_module"}
    targets = [
        path for path, module in model.named_modules()
        if path and not internal & set(path.split(".")) and name_matches(path, config.target_modules)
        and (isinstance(module, LoraLayer) or layer_kind(module))
    ]
    if not targets:
        raise ValueError(
            f"LoRA target_modules={config.target_modules!r} matches no nn.Linear / Conv1D / nn.Embedding "
            f"in {type(model).__name__}; its modules are: {describe_modules(model)}"
        )
    for path in targets:
        module = model.get_submodule(path)
        if not isinstance(module, LoraLayer):
            module = LoraLayer(module)
            set_child(model, path, module)
        if name in module.adapter_names():
            raise ValueError(f"adapter {name!r} already exists on {path}; pick another name")
        module.add_adapter(name, config.r, config.scaling, config.dropout, config.init)
    hits_of = {pattern: [p for p, m in model.named_modules() if p and not internal & set(p.split("."))
                         and name_matches(p, [pattern]) and not isinstance(m, LoraLayer)]
               for pattern in config.modules_to_save or []}
    missing = [pattern for pattern, hits in hits_of.items() if not hits]
    if missing and len(missing) == len(hits_of):
        raise ValueError(f"modules_to_save {missing!r} matches no module of {type(model).__name__}")
    if missing:  # peft's task types list heads of several families (SEQ_CLS: classifier and score)
        warnings.warn(f"modules_to_save entries {missing!r} match no module of {type(model).__name__}; "
                      "the other entries are used", stacklevel=2)
    for path in dict.fromkeys(p for hits in hits_of.values() for p in hits):  # once each, in order
        module = model.get_submodule(path)
        if not isinstance(module, ModulesToSave):
            module = ModulesToSave(module)
            set_child(model, path, module)
        module.add_adapter(name)
    link_siblings(model)
    return targets


def link_siblings(model: nn.Module) -> None:
    """Group the LoRA layers that the model calls on one tensor (its layout's ``shared_input``: LLaMA's
    q/k/v and gate/up projections), so a training step computes them together."""
    found = layout(model)
    for parent in model.modules():
        for names in found.shared_input if found is not None else ():
            members = tuple(m for n in names if isinstance(m := parent._modules.get(n), LoraLayer))
            group = Siblings(members) if len(members) > 1 else None
            for m in members:
                m.siblings = group


def lora_trainable(model: nn.Module, name: str, bias: str) -> None:
    """Make adapter ``name`` (its A/B, saved modules and the biases ``bias`` asks for) the only trainables."""
    for p in model.parameters():
        p.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, LoraLayer) and name in module.adapter_names():
            for d in (module.lora_A, module.lora_B):
                if name in d:
                    d[name].weight.requires_grad_(True)
            for d in (module.lora_embedding_A, module.lora_embedding_B):
                if name in d:
                    d[name].requires_grad_(True)
            if bias == "lora_only" and getattr(module.base_layer, "bias", None) is not None:
                module.base_layer.bias.requires_grad_(True)
        elif isinstance(module, ModulesToSave) and name in module.modules_to_save:
            for p in module.modules_to_save[name].parameters():
                p.requires_grad_(True)
    if bias == "all":
        for pname, p in model.named_parameters():
            copy = ".modules_to_save." in pname or ".original_module." in pname
            if pname.endswith("bias") and not copy:
                p.requires_grad_(True)


def unwrap(model: nn.Module) -> None:
    """Replace every wrapper by its base (LoRA: ``base_layer``; saved modules: the active trained copy)."""
    for path, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            set_child(model, path, module.base_layer)
        elif isinstance(module, ModulesToSave):
            name = module.active_adapter
            set_child(model, path, module.modules_to_save[name] if name else module.original_module)
