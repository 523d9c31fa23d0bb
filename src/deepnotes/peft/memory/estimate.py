"""Training memory of a transformers model from its config alone: :func:`estimate`.

How: the model is built on PyTorch's meta device (shapes, no memory) from the config, the PEFT method is
applied, and one training step of the installed transformers' own code runs on it — forward with the loss,
backward, the optimizer step — after a first step, so the optimizer's state already exists (the steady
state of a run). Every storage the step's operators create is counted while it is alive
(:class:`~deepnotes.peft.memory.live.LiveBytes`), so activations are what autograd actually keeps for this
implementation and this method (a frozen layer keeps no input for a weight gradient; LoRA keeps its
low-rank inputs), and the peak is the true high-water mark of that step. Nothing is downloaded or allocated:
a 72B configuration is measured in seconds.

The assumptions, printed with every table (:data:`ASSUMPTIONS` and the recipe's line):

- dtypes (:data:`DTYPES`): ``fp32``; ``bf16`` / ``fp16`` = mixed precision as DeepSpeed and Megatron train:
  weights, activations and gradients in 16 bits, plus an fp32 master copy of the trained weights and fp32
  optimizer moments (ZeRO's 2 + 2 + 12 bytes per trained parameter with AdamW, Rajbhandari et al. 2020);
  ``bf16-pure``: everything in bf16, moments included (``model.to(torch.bfloat16)`` with torch's AdamW);
- the optimizer (``adamw``: two moments; ``sgd``: momentum) updates one tensor at a time (torch's
  for-loop or fused AdamW); torch's ``foreach`` AdamW would add up to one copy of the trained parameters;
- ``attention="sdpa"``: a fused kernel (flash / memory-efficient on CUDA, torch's flash kernel on a CPU)
  keeps queries, keys, values, output and a log-sum-exp, no ``S x S`` matrix (on the meta device torch
  would pick its unfused path, so the dry run swaps in :func:`~deepnotes.peft.memory.live.fused_attention`);
  ``"eager"`` keeps the attention probabilities, as transformers' eager code does; on a CPU
  (``device="cpu"``) torch has no fused kernel with attention dropout and keeps them too;
- a batch of full-length sequences (no padding mask) whose labels are the inputs (encoder-decoder models:
  source and target of ``seq`` tokens each);
- no activation checkpointing; one process holding the whole model (ZeRO-3 / FSDP divide weights,
  gradients and optimizer states by the number of GPUs; activations are per GPU);
- not counted: the CUDA context and kernel workspaces (about 0.5-1 GiB per GPU), the caching allocator's
  fragmentation, communication buffers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch import nn

from deepnotes.peft.api import apply
from deepnotes.peft.memory.live import (
    LiveBytes,
    NoPadding,
    fused_attention,
    peak_without,
    rise_after,
    storage_key,
)
from deepnotes.peft.methods import method_config


@dataclass(frozen=True)
class Recipe:
    """A precision recipe: the model's dtype, whether trained weights keep an fp32 master copy, and the
    optimizer states' dtype."""

    model: torch.dtype
    master: bool
    states: torch.dtype
    text: str


DTYPES = {
    "fp32": Recipe(torch.float32, False, torch.float32, "fp32 weights, activations, gradients and optimizer "
                   "states"),
    "bf16": Recipe(torch.bfloat16, True, torch.float32, "bf16 weights, activations and gradients; fp32 "
                   "master copy of the trained weights and fp32 optimizer states (mixed precision)"),
    "fp16": Recipe(torch.float16, True, torch.float32, "fp16 weights, activations and gradients; fp32 master "
                   "copy of the trained weights and fp32 optimizer states (mixed precision)"),
    "bf16-pure": Recipe(torch.bfloat16, False, torch.bfloat16, "bf16 everywhere, optimizer states included"),
}
# state tensors per trained parameter: AdamW's two moments, SGD's momentum
OPTIMIZERS = {"adamw": 2, "sgd": 1}
ATTENTION = ("sdpa", "eager")
DEVICES = ("cuda", "cpu")
ASSUMPTIONS = (
    "one training step after a first one (optimizer states exist), dry-run on the meta device with the "
    "installed transformers' code: activations are what autograd keeps, the total is the step's peak",
    "the optimizer updates one tensor at a time (torch's for-loop or fused AdamW; torch's foreach AdamW "
    "adds up to one copy of the trained parameters)",
    "sdpa attention = a fused kernel (flash / memory-efficient): q, k, v, output and log-sum-exp kept, "
    "no S x S matrix (on a CPU with attention dropout torch's unfused path, which keeps it); eager "
    "attention keeps the probabilities",
    "full-length sequences, no padding mask, labels = inputs; no activation checkpointing",
    "one process holds the whole model (ZeRO-3 / FSDP divide weights, gradients and states by the GPU "
    "count)",
    "not counted: CUDA context and kernel workspaces (~0.5-1 GiB per GPU), allocator fragmentation, "
    "communication buffers",
)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training step. ``activations``: the peak of everything but the gradients during the
    forward and backward passes (what autograd keeps, the loss's logits, the backward's temporaries);
    ``step_temporaries``: what the optimizer step adds on top of the gradients. ``total`` is the step's
    peak: weights and optimizer states plus the highest point of the rest, at most the sum of the rows (the
    gradients fill while the activations are freed)."""

    weights: int
    gradients: int
    optimizer_states: int
    activations: int
    step_temporaries: int
    total: int
    params: int
    trainable: int
    setting: dict[str, Any]

    @property
    def sum_of_parts(self) -> int:
        return (self.weights + self.gradients + self.optimizer_states + self.activations
                + self.step_temporaries)

    def as_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "gradients": self.gradients,
                "optimizer_states": self.optimizer_states, "activations": self.activations,
                "step_temporaries": self.step_temporaries,
                "total": self.total, "params": self.params, "trainable": self.trainable, **self.setting}


def read_config(config: Any):
    """A transformers config from a config object, a mapping (``config.json``'s content), a JSON file or a
    folder holding ``config.json``; nothing is downloaded."""
    from transformers import AutoConfig, PretrainedConfig

    if isinstance(config, PretrainedConfig):
        return config
    if isinstance(config, str | Path):
        path = Path(config)
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: give a config JSON file or a folder holding "
                                    "config.json")
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    if not isinstance(config, Mapping) or "model_type" not in config:
        raise ValueError("the config needs a model_type (e.g. \"qwen2\", \"llama\", \"gpt2\"), as "
                         "config.json has")
    data = dict(config)
    return AutoConfig.for_model(data.pop("model_type"), **data)


def meta_model(config: Any, dtype: torch.dtype, attention: str) -> nn.Module:
    """The model of ``config`` on the meta device in ``dtype`` (causal LM or encoder-decoder)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    cls = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
    with torch.device("meta"):
        model = cls.from_config(config, dtype=dtype, attn_implementation=attention)
    for m in model.modules():  # its padding check reads token values, which meta tensors lack; the dry
        if hasattr(m, "warn_if_padding_and_no_attention_mask"):  # run's batch holds no padding anyway
            m.warn_if_padding_and_no_attention_mask = _no_check
    return model


def _no_check(*_args: Any, **_kwargs: Any) -> None:
    """Stands in for transformers' padding warning in a dry run."""


def _optimizer(trained: list[nn.Parameter], name: str, recipe: Recipe) -> torch.optim.Optimizer:
    """The optimizer the dry run steps with. Mixed precision keeps its fp32 states off the model (counted
    from the parameter count), so its dry run steps with stateless SGD."""
    if recipe.master:
        return torch.optim.SGD(trained, lr=1e-3, foreach=False)
    if name == "adamw":
        return torch.optim.AdamW(trained, lr=1e-3, foreach=False)
    return torch.optim.SGD(trained, lr=1e-3, momentum=0.9, foreach=False)


def _step(model: nn.Module, inputs: dict[str, torch.Tensor], opt: torch.optim.Optimizer,
          tracker: LiveBytes | None = None) -> tuple[int, set[int]]:
    """One training step; returns the tracker's position after the backward pass and the gradients'
    allocation numbers."""
    model(**inputs).loss.backward()  # the output (and any cache it holds) is dropped before the backward
    end, grads = 0, set()
    if tracker is not None:
        end = tracker.mark()
        grads = tracker.numbers(p.grad for p in model.parameters() if p.grad is not None)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return end, grads


def _state_tensors(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor) and v.dim() > 0]


def _unique_bytes(tensors) -> int:
    return sum({storage_key(t): t.untyped_storage().nbytes() for t in tensors}.values())


def dry_run(model: nn.Module, batch: int, seq: int, optimizer: str, recipe: Recipe, attention: str,
            device: str) -> tuple[LiveBytes, int, set[int], list[torch.Tensor]]:
    """Two training steps of ``model`` (on the meta device), the second one tracked; returns the tracker,
    its position after the backward pass, the gradients' allocation numbers and the optimizer's state
    tensors. The sdpa stand-in replaces ``F.scaled_dot_product_attention`` process-wide while it runs: do not
    train in another thread meanwhile."""
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(trained, optimizer, recipe)
    ids = torch.zeros(batch, seq, dtype=torch.long, device="meta")
    inputs = {"input_ids": ids, "labels": ids}
    swap = (mock.patch("torch.nn.functional.scaled_dot_product_attention", fused_attention(device))
            if attention == "sdpa" else contextlib.nullcontext())
    model.train()
    with swap, NoPadding():  # transformers reads whether masks are all ones: they are
        _step(model, inputs, opt)  # creates the optimizer state: the tracked step is a steady-state one
        tracker = LiveBytes([*model.parameters(), *model.buffers(), *_state_tensors(opt), ids])
        with tracker:
            end, grads = _step(model, inputs, opt, tracker)
    return tracker, end, grads, _state_tensors(opt)


def estimate(config: Any, method: str = "lora", batch: int = 1, seq: int = 2048, dtype: str = "bf16",
             optimizer: str = "adamw", *, attention: str = "sdpa", device: str = "cuda",
             options: Mapping[str, Any] | None = None) -> MemoryEstimate:
    """Weights, gradients, optimizer states, activations and total (bytes) of one training step of the model
    ``config`` describes (a config object, ``config.json``'s mapping, a JSON file or a folder) with
    ``method`` (a registered PEFT method or ``full``; ``options``: its config fields, e.g. ``{"r": 16}``),
    ``batch`` sequences of ``seq`` tokens, the precision recipe ``dtype`` (:data:`DTYPES`) and
    ``optimizer`` (:data:`OPTIMIZERS`). ``device`` (``cuda`` or ``cpu``) picks the attention kernel sdpa
    runs: a fused one, except on a CPU with attention dropout, where torch takes its unfused path. The
    assumptions are the module's (:data:`ASSUMPTIONS`)."""
    for value, valid, what in ((dtype, DTYPES, "dtype"), (optimizer, OPTIMIZERS, "optimizer"),
                               (attention, ATTENTION, "attention"), (device, DEVICES, "device")):
        if value not in valid:
            raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    if batch < 1 or seq < 1:
        raise ValueError(f"batch and seq must be at least 1, got {batch} and {seq}")
    cfg, recipe = read_config(config), DTYPES[dtype]
    model = meta_model(cfg, recipe.model, attention)
    method_cfg = method_config(method, model, **dict(options or {}))
    if method_cfg is not None:
        apply(model, method_cfg)
    trained = [p for p in model.parameters() if p.requires_grad]
    tracker, end, grads, states = dry_run(model, batch, seq, optimizer, recipe, attention, device)
    n_trained = sum(p.numel() for p in trained)
    gradients = sum(p.numel() * p.element_size() for p in trained)
    if recipe.master:  # fp32 master weights + fp32 moments, kept by the mixed-precision optimizer
        optimizer_states = n_trained * (4 + 4 * OPTIMIZERS[optimizer])
        temporaries = 8 * max(p.numel() for p in trained)  # an fp32 gradient copy + one fp32 temporary
    else:
        optimizer_states, temporaries = _unique_bytes(states), rise_after(tracker.events, end)
    weights = _unique_bytes([*model.parameters(), *model.buffers()])
    setting = {"model_type": cfg.model_type, "method": method, "batch": batch, "seq": seq, "dtype": dtype,
               "optimizer": optimizer, "attention": attention, "device": device}
    return MemoryEstimate(weights=weights, gradients=gradients, optimizer_states=optimizer_states,
                          activations=peak_without(tracker.events, grads, end), step_temporaries=temporaries,
                          total=weights + optimizer_states + max(tracker.peak, gradients + temporaries),
                          params=sum(p.numel() for p in model.parameters()), trainable=n_trained,
                          setting=setting)


def format_table(est: MemoryEstimate) -> str:
    """The estimate as a table with its setting and assumptions (what ``deepnotes peft memory`` prints)."""
    s = est.setting
    master = " + fp32 master weights" if DTYPES[s["dtype"]].master else ""
    rows = [("weights", est.weights), ("gradients", est.gradients),
            (f"optimizer states ({s['optimizer']}{master})", est.optimizer_states),
            ("activations (peak)", est.activations), ("optimizer step temporaries", est.step_temporaries),
            ("sum of the rows", est.sum_of_parts),
            ("total (peak of the step)", est.total)]
    lines = [f"{s['model_type']}: {est.params:,} parameters, {est.trainable:,} trained "
             f"({100 * est.trainable / max(est.params, 1):.3g}%); method {s['method']}, batch {s['batch']} x "
             f"{s['seq']} tokens, {s['attention']} attention on {s['device']}",
             f"dtype {s['dtype']}: {DTYPES[s['dtype']].text}",
             f"{'':44s}{'bytes':>20s}{'GB':>11s}{'GiB':>11s}"]
    lines += [f"{label:44s}{value:>20,}{value / 1e9:>11.3f}{value / 2**30:>11.3f}" for label, value in rows]
    lines.append("assumptions:")
    lines += [f"  - {a}" for a in ASSUMPTIONS]
    return "\n".join(lines)
