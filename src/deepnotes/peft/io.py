"""Adapters on disk in peft's layout: ``adapter_config.json`` + ``adapter_model.safetensors``.

Key names are peft's: the model path prefixed with ``base_model.model.`` and the adapter name removed
(``...c_attn.lora_A.default.weight`` is stored as ``...c_attn.lora_A.weight``; a module in
``modules_to_save`` is stored under its own path). ``peft.PeftModel.from_pretrained`` loads our LoRA
folders and :func:`load_adapter` loads peft's. Prompt tuning, and the plain (folded) prefix of a decoder-only
model, use peft's ``prompt_embeddings`` key and ``task_type``, so those folders load both ways too; the
bottleneck adapters, prefixes still holding their MLP and our encoder-decoder prefixes (peft has none of
these: its seq2seq prefix table gives several layers the same block) keep the same two-file layout with our
own keys.

Every folder names its base as peft's Auto classes read it: ``task_type`` (``CAUSAL_LM`` for a model that
generates from a decoder alone, ``SEQ_2_SEQ_LM`` for an encoder-decoder one, else null),
``base_model_name_or_path`` (the folder or hub name the model was loaded from, ``config._name_or_path``,
unless the caller names it) and ``revision``, so ``peft.AutoPeftModelForCausalLM.from_pretrained(folder)``
builds the base and the adapter in one call.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from torch import nn

from deepnotes.core.checkpoint import atomic_write_bytes, atomic_write_json
from deepnotes.peft.api import apply, peft_state
from deepnotes.peft.methods import config_from_peft, method_of

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


def adapter_tensors(model: nn.Module, name: str | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """(peft-style config dict, tensors under peft's key names) of adapter ``name`` (default: active)."""
    state = peft_state(model)
    name = name or state.active
    config = state.configs[name]
    method_name, method = method_of(config)
    if method.save is None:
        raise ValueError(f"{method_name} has no adapter to save")
    return method.save(model, config, name)


def task_type(model: nn.Module) -> str | None:
    """peft's ``task_type`` of ``model``: ``CAUSAL_LM`` / ``SEQ_2_SEQ_LM`` for a generating model (what the
    Auto classes need), None for others (a classifier: peft's task types would add heads of their own)."""
    can_generate = getattr(model, "can_generate", None)
    if can_generate is None or not can_generate():
        return None
    return "SEQ_2_SEQ_LM" if getattr(model.config, "is_encoder_decoder", False) else "CAUSAL_LM"


def base_fields(model: nn.Module, base_model: str | None = None, revision: str | None = None) -> dict:
    """``task_type``, ``base_model_name_or_path`` and ``revision`` of ``model`` for adapter_config.json."""
    source = base_model or getattr(getattr(model, "config", None), "_name_or_path", None) or None
    return {"task_type": task_type(model), "base_model_name_or_path": None if source is None else str(source),
            "revision": revision}


def save_adapter(model: nn.Module, directory: str | Path, name: str | None = None,
                 base_model: str | Path | None = None, revision: str | None = None) -> Path:
    """Write adapter ``name`` (default: the active one) to ``directory`` in peft's layout; returns it.

    ``base_model``: the folder or hub name to record as the base (default: where ``model`` was loaded from,
    ``model.config._name_or_path``); ``revision``: the base's hub revision, if any."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config, tensors = adapter_tensors(model, name)
    fields = base_fields(model, None if base_model is None else str(base_model), revision)
    config = {**config, **{k: v for k, v in fields.items() if config.get(k) is None}}
    blob = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata={"format": "pt"})
    atomic_write_bytes(directory / WEIGHTS_NAME, blob)
    atomic_write_json(directory / CONFIG_NAME, config)
    return directory


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
    method = method_of(config)[1]
    config, tensors = method.read(model, config, tensors, str(weights))
    apply(model, config, name)
    own = model.state_dict()
    mapped = {}
    for key, target in method.model_keys(list(tensors), name, model).items():
        t = tensors[key]
        if target not in own:
            raise ValueError(f"{weights}: tensor {key!r} has no counterpart {target!r} in "
                             f"{type(model).__name__}")
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
