"""LoRA (Hu et al. 2021): the layer wrapper (``layer.py``), its insertion into a model (``model.py``) and its
config (``config.py``). This module is what the method registry holds: the default config of ``peft train``,
the trainable set, and peft's file layout (keys prefixed with ``base_model.model.``, adapter name removed:
``...c_attn.lora_A.default.weight`` is stored as ``...c_attn.lora_A.weight``; a module in
``modules_to_save`` under its own path)."""

from __future__ import annotations

from typing import Any

from torch import nn

from deepnotes.peft.methods.base import PEFT_PREFIX, PeftMethod, Tensors, config_overrides
from deepnotes.peft.methods.lora.config import LoraConfig
from deepnotes.peft.methods.lora.layer import LoraLayer, ModulesToSave
from deepnotes.peft.methods.lora.model import inject_lora, lora_trainable, unwrap
from deepnotes.peft.methods.targets import default_lora_targets

LORA_PARTS = ("lora_A", "lora_B")
LORA_EMB = ("lora_embedding_A", "lora_embedding_B")


def default_config(model: nn.Module, opts: dict[str, Any]) -> LoraConfig:
    """r=8, alpha=16 on every attention and MLP projection of the architecture
    (:func:`~deepnotes.peft.methods.targets.default_lora_targets`): a tiny base needs the capacity
    (attention-only LoRA barely moved the loss)."""
    opts = config_overrides(LoraConfig, opts, "lora")
    targets = opts.pop("target_modules", None) or default_lora_targets(model)
    return LoraConfig(**{"r": 8, "alpha": 16, "target_modules": targets, **opts})


def lora_tensors(model: nn.Module, name: str, bias: str) -> Tensors:
    """Adapter ``name``'s tensors under peft's names (without the ``base_model.model.`` prefix)."""
    out = {}
    wrapped = {p for p, m in model.named_modules() if isinstance(m, LoraLayer) and name in m.adapter_names()}
    for key, t in model.state_dict().items():
        parts = key.split(".")
        if any(p in parts for p in LORA_PARTS + LORA_EMB) or "modules_to_save" in parts:
            if name not in parts:
                continue
            i = parts.index(name)
            if parts[i - 1] == "modules_to_save":  # x.modules_to_save.<name>.w -> x.w
                out[".".join(parts[: i - 1] + parts[i + 1 :])] = t
            else:
                out[".".join(parts[:i] + parts[i + 1 :])] = t
        elif parts[-1] == "bias" and "original_module" not in parts:
            owner = ".".join(parts[:-2]) if parts[-2] == "base_layer" else None
            if bias == "all" or (bias == "lora_only" and owner in wrapped):
                out[key] = t
    return out


def save(model: nn.Module, config: LoraConfig, name: str) -> tuple[dict[str, Any], Tensors]:
    layers = [m for m in model.modules() if isinstance(m, LoraLayer) and name in m.adapter_names()]
    peft_config = config.to_peft(fan_in_fan_out=any(m.kind == "conv1d" for m in layers))
    return peft_config, {PEFT_PREFIX + k: v for k, v in lora_tensors(model, name, config.bias).items()}


def _model_key(key: str, name: str, saved: set[str]) -> str:
    key = key.removeprefix(PEFT_PREFIX)
    parts = key.split(".")
    for marker in LORA_PARTS:
        if marker in parts:
            i = parts.index(marker) + 1
            return ".".join(parts[:i] + [name] + parts[i:])
    if parts[-1] in LORA_EMB:
        return f"{key}.{name}"
    for i in range(len(parts) - 1, 0, -1):
        owner = ".".join(parts[:i])
        if owner in saved:
            return ".".join([owner, "modules_to_save", name] + parts[i:])
    return key


def model_keys(keys: list[str], name: str, model: nn.Module) -> dict[str, str]:
    saved = {p for p, m in model.named_modules() if isinstance(m, ModulesToSave)}
    return {k: _model_key(k, name, saved) for k in keys}


def merge_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, LoraLayer)]


METHOD = PeftMethod(
    config=LoraConfig, lr=5e-3, default_config=default_config, inject=inject_lora,
    trainable=lambda model, config, name: lora_trainable(model, name, config.bias),
    save=save, model_keys=model_keys, peft_type="LORA", wrappers=(LoraLayer, ModulesToSave),
    merge_layers=merge_layers, unload=unwrap,
    knobs={"r": "r", "alpha": "alpha", "dropout": "dropout", "target_modules": "target_modules"},
)
