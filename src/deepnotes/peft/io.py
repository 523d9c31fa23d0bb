"""Adapters on disk in peft's layout: ``adapter_config.json`` + ``adapter_model.safetensors``.

Key names are peft's: the model path prefixed with ``base_model.model.`` and the adapter name removed
(``...c_attn.lora_A.default.weight`` is stored as ``...c_attn.lora_A.weight``; a module in
``modules_to_save`` is stored under its own path). ``peft.PeftModel.from_pretrained`` loads our LoRA
folders and :func:`load_adapter` loads peft's. Prompt tuning, and the plain (folded) prefix of a decoder-only
model, use peft's ``prompt_embeddings`` key and ``task_type``, so those folders load both ways too; the
bottleneck adapters, prefixes still holding their MLP and our multi-site encoder-decoder prefixes (peft has
none of these) keep the same two-file layout with our own keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import nn

from deepnotes.core.checkpoint import atomic_write_bytes, atomic_write_json
from deepnotes.peft.api import apply, peft_state
from deepnotes.peft.config import AdapterConfig, LoraConfig, PrefixConfig, PromptConfig, config_from_peft
from deepnotes.peft.lora.layer import LoraLayer, ModulesToSave

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PREFIX = "base_model.model."
LORA_PARTS = ("lora_A", "lora_B")
LORA_EMB = ("lora_embedding_A", "lora_embedding_B")


def _lora_tensors(model: nn.Module, name: str, bias: str) -> dict[str, torch.Tensor]:
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


def _adapter_tensors(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, t in model.state_dict().items():
        parts = key.split(".")
        if "adapters" in parts and parts[parts.index("adapters") + 1] == name:
            i = parts.index("adapters") + 1
            out[".".join(parts[:i] + parts[i + 1 :])] = t
    return out


def adapter_tensors(model: nn.Module, name: str | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """(peft-style config dict, tensors under peft's key names) of adapter ``name`` (default: active)."""
    state = peft_state(model)
    name = name or state.active
    config = state.configs[name]
    if isinstance(config, LoraConfig):
        conv = any(m.kind == "conv1d" for m in model.modules() if isinstance(m, LoraLayer) and name in m.adapter_names())
        return config.to_peft(fan_in_fan_out=conv), {PREFIX + k: v for k, v in _lora_tensors(model, name, config.bias).items()}
    if isinstance(config, AdapterConfig):
        return config.to_peft(), {PREFIX + k: v for k, v in _adapter_tensors(model, name).items()}
    if isinstance(config, PrefixConfig):
        if not model.prefix_tuning.encdec and not config.projection:
            # a decoder-only model's plain prefix is peft's own layout: one (P, layers * 2 * width) table
            return ({**config.to_peft(), "task_type": "CAUSAL_LM"},
                    {"prompt_embeddings": model.prefix_tuning.tables["decoder"].embedding.weight})
        tensors = {f"prefix_tuning.{k}": v for k, v in model.prefix_tuning.state_dict().items()}
        return config.to_peft(), tensors
    # peft prepends the prompt only in a task model (no task_type: a plain PeftModel that ignores it); our
    # encoder-decoder prompt sits in front of the encoder alone, which is peft's num_transformer_submodules=1
    task = "SEQ_2_SEQ_LM" if model.config.is_encoder_decoder else "CAUSAL_LM"
    return ({**config.to_peft(), "task_type": task, "num_transformer_submodules": 1},
            {"prompt_embeddings": model.prompt_tuning.embedding.weight})


def save_adapter(model: nn.Module, directory: str | Path, name: str | None = None) -> Path:
    """Write adapter ``name`` (default: the active one) to ``directory`` in peft's layout; returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config, tensors = adapter_tensors(model, name)
    blob = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata={"format": "pt"})
    atomic_write_bytes(directory / WEIGHTS_NAME, blob)
    atomic_write_json(directory / CONFIG_NAME, config)
    return directory


def _model_key(key: str, name: str, model: nn.Module, saved: set[str]) -> str:
    """Map a file key (peft naming) to our model's state-dict key for adapter ``name``."""
    if key == "prompt_embeddings":
        return "prompt_tuning.embedding.weight"
    key = key.removeprefix(PREFIX)
    parts = key.split(".")
    for marker in LORA_PARTS + ("adapters",):
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


def read_adapter_config(directory: str | Path):
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: an adapter folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    return config_from_peft(raw, source=str(path))


def load_adapter(model: nn.Module, directory: str | Path, name: str = "default") -> nn.Module:
    """Insert the method described by ``directory/adapter_config.json`` into ``model`` and load its weights.

    Works on a plain base model (and on one that already has other named adapters). A tensor whose shape
    differs from the model's raises ``ValueError`` naming the first such tensor.
    """
    directory = Path(directory)
    config = read_adapter_config(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found")
    tensors = load_file(str(weights))
    if isinstance(config, PromptConfig) and model.config.is_encoder_decoder:
        table, p = tensors.get("prompt_embeddings"), config.num_virtual_tokens
        if table is not None and table.shape[0] == 2 * p:
            # peft's seq2seq default (num_transformer_submodules 2) stores 2P rows, but its forward and
            # generate() prepend only the first P, to the encoder input: the same prompt as ours
            tensors = {**tensors, "prompt_embeddings": table[:p]}
    if isinstance(config, PrefixConfig) and "prompt_embeddings" in tensors:  # peft's layout (peft or our GPT-2)
        if model.config.is_encoder_decoder:
            raise ValueError(f"{weights}: a peft PREFIX_TUNING table of an encoder-decoder model (peft's own layout "
                             "of decoder-only prefixes) is not read by deepnotes; train the prefix here instead")
        # peft saves MLP(E) already evaluated, so the table is a plain (P, layers * 2 * width) prefix
        config.projection, config.sites = False, ["decoder"]
        tensors = {"prefix_tuning.tables.decoder.embedding.weight": tensors["prompt_embeddings"]}
    if isinstance(config, PrefixConfig) and any(".mlp." in k for k in tensors) != config.projection:
        raise ValueError(f"{weights}: prefix tensors do not match prefix_projection={config.projection}")
    apply(model, config, name)
    saved = {p for p, m in model.named_modules() if isinstance(m, ModulesToSave)}
    own = model.state_dict()
    mapped = {}
    for key, t in tensors.items():
        target = _model_key(key, name, model, saved)
        if target not in own:
            raise ValueError(f"{weights}: tensor {key!r} has no counterpart {target!r} in {type(model).__name__}")
        if own[target].shape != t.shape:
            raise ValueError(
                f"{weights}: tensor {key!r} has shape {tuple(t.shape)} but the model's {target!r} has "
                f"{tuple(own[target].shape)}: the adapter was trained on a model of another shape"
            )
        mapped[target] = t
    with torch.no_grad():
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        for target, t in mapped.items():
            dst = params.get(target, buffers.get(target))
            if dst is None:
                raise ValueError(f"{weights}: {target!r} is not a parameter of the model")
            dst.copy_(t.to(dst.dtype))
    return model



