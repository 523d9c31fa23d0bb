"""The LoRA layer: a frozen base layer plus named low-rank updates ``(alpha / r) * B A``.

Wraps ``nn.Linear`` (weight ``out x in``), transformers' ``Conv1D`` (GPT-2; weight ``in x out``, i.e.
fan-in first) and ``nn.Embedding``. Submodule names follow peft (``base_layer``, ``lora_A.<name>``,
``lora_B.<name>``, ``lora_embedding_A.<name>``) so state dicts translate one to one.

Speed: peft computes ``base(x) + lora_B(lora_A(dropout(x))) * scaling``, i.e. an extra full-size
product with the scale and an extra full-size add. Here the base output is written by one GEMM and the
low-rank product is accumulated into it in place by ``addmm_`` with the scale as ``alpha``; the only new
full-size tensor is the dropout copy of ``x`` (and only when dropout is on and the layer is training).
Layers that read the same input (LLaMA's q/k/v, gate/up) share that copy and their ``A`` product while
training with dropout (:mod:`~deepnotes.peft.methods.lora.fused`).
"""

from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.peft.methods.lora.fused import Member, Siblings, base_output, drop, group_lora


def is_conv1d(module: nn.Module) -> bool:
    """Is ``module`` transformers' GPT-2 projection layer (``y = x @ W + b`` with ``W: in x out``)? Looked up
    among the loaded modules: a model holding one has imported it, and the CLI, which reads the method
    registry for its choices, does not pay for importing transformers."""
    utils = sys.modules.get("transformers.pytorch_utils")
    return utils is not None and isinstance(module, utils.Conv1D)


def layer_kind(module: nn.Module) -> str | None:
    """"linear", "conv1d", "embedding" or None (not wrappable)."""
    if isinstance(module, nn.Linear):
        return "linear"
    if is_conv1d(module):
        return "conv1d"
    if isinstance(module, nn.Embedding):
        return "embedding"
    return None


def in_out_features(module: nn.Module) -> tuple[int, int]:
    kind = layer_kind(module)
    if kind == "linear":
        return module.in_features, module.out_features
    if kind == "conv1d":
        return module.weight.shape[0], module.weight.shape[1]  # fan-in first
    if kind == "embedding":
        return module.num_embeddings, module.embedding_dim
    raise TypeError(f"LoRA cannot wrap {type(module).__name__}; supported: nn.Linear, Conv1D, nn.Embedding")


def _param(module: nn.Module, name: str) -> torch.Tensor | None:
    """``getattr(module, name)`` for a registered parameter without nn.Module.__getattr__'s cost; falls back
    to it for anything else (a parametrization, a property, a buffer)."""
    value = module._parameters.get(name)
    return value if value is not None else getattr(module, name, None)


class LoraLayer(nn.Module):
    """A base layer with any number of named LoRA updates, one of them active.

    Shapes: linear/Conv1D ``lora_A.<name>.weight: r x in``, ``lora_B.<name>.weight: out x r``;
    embedding ``lora_embedding_A.<name>: r x num_embeddings``, ``lora_embedding_B.<name>: dim x r``.
    """

    # False on a layer: it never joins its siblings' group (tests compare the two paths)
    fuse = True

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.kind = layer_kind(base_layer)
        if self.kind is None:
            raise TypeError(f"LoRA cannot wrap {type(base_layer).__name__}")
        self.base_layer = base_layer
        self.lora_A = nn.ModuleDict()
        self.lora_B = nn.ModuleDict()
        self.lora_embedding_A = nn.ParameterDict()
        self.lora_embedding_B = nn.ParameterDict()
        self.dropout: dict[str, float] = {}
        self.scaling: dict[str, float] = {}
        self.active_adapter: str | None = None
        self.merged_adapters: list[str] = []
        self.disabled = False
        self._cast_cache: tuple | None = None  # (key, A, B^T) in a low precision, for inference only
        self.siblings: Siblings | None = None  # the layers of its block that read the same input, if any

    # --- adapters -------------------------------------------------------------------------------
    def add_adapter(self, name: str, r: int, scaling: float, dropout: float, init: str) -> None:
        fan_in, fan_out = in_out_features(self.base_layer)
        weight = self.base_layer.weight
        kw = {"device": weight.device, "dtype": weight.dtype}
        if self.kind == "embedding":
            # peft's embedding init: A zero, B normal (the product still starts at zero)
            self.lora_embedding_A[name] = nn.Parameter(torch.zeros(r, fan_in, **kw))
            self.lora_embedding_B[name] = nn.Parameter(torch.randn(fan_out, r, **kw))
        else:
            a = nn.Linear(fan_in, r, bias=False, **kw)
            b = nn.Linear(r, fan_out, bias=False, **kw)
            if init == "gaussian":
                nn.init.normal_(a.weight, std=1.0 / r)
            else:
                nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
            nn.init.zeros_(b.weight)
            self.lora_A[name] = a
            self.lora_B[name] = b
        self.dropout[name] = dropout
        self.scaling[name] = scaling
        if self.active_adapter is None:
            self.active_adapter = name

    def adapter_names(self) -> list[str]:
        return list(self.lora_A.keys()) + list(self.lora_embedding_A.keys())

    # the base layer's tensors, for model code that reads them through the wrapped attribute (T5's
    # feed-forward checks ``self.wo.weight.dtype``); peft's wrappers expose the same
    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return getattr(self.base_layer, "bias", None)

    def delta_weight(self, name: str) -> torch.Tensor:
        """``scaling * B A`` laid out like the base weight (out x in, in x out for Conv1D, num x dim)."""
        if self.kind == "embedding":
            delta = (self.lora_embedding_B[name] @ self.lora_embedding_A[name]).t()
        else:
            delta = self.lora_B[name].weight @ self.lora_A[name].weight
            if self.kind == "conv1d":
                delta = delta.t()
        return delta * self.scaling[name]

    @torch.no_grad()
    def merge(self, name: str | None = None) -> None:
        name = name or self.active_adapter
        if name is None or name in self.merged_adapters:
            return
        weight = self.base_layer.weight
        if self.kind == "embedding":
            # the table is often tied to the output head, which the unmerged update does not touch:
            # merge into a copy so the head keeps the original weights (unties them)
            self.base_layer.weight = nn.Parameter(weight.detach().clone(), requires_grad=weight.requires_grad)
            weight = self.base_layer.weight
        weight.add_(self.delta_weight(name).to(weight.dtype))
        self.merged_adapters.append(name)

    @torch.no_grad()
    def unmerge(self) -> None:
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            self.base_layer.weight.sub_(self.delta_weight(name).to(self.base_layer.weight.dtype))

    # --- forward --------------------------------------------------------------------------------
    def _unmerged_active(self) -> str | None:
        name = self.active_adapter
        if self.disabled or name is None or name in self.merged_adapters:
            return None
        return name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (..., in)`` -> ``(..., out)`` (embedding: ids ``(...)`` -> ``(..., dim)``)."""
        name = self._unmerged_active()
        if self.merged_adapters and name is None and self.disabled:
            raise RuntimeError("cannot disable LoRA while it is merged into the weights: unmerge first")
        if name is None:
            return self.base_layer(x)
        if self.kind == "embedding":
            return self._embedding_forward(x, name)
        if self.siblings is not None and self.training and self.dropout[name] > 0 and self.fuse \
                and not torch.compiler.is_compiling():  # compiled: the compiler fuses, the cache would break
            out = self._group_forward(x, name)
            if out is not None:
                return out
        # This runs per adapted layer per call, and on a GPU the host's time is the step's time (small
        # kernels):
        # parameters are read from the modules' dicts, because nn.Module.__getattr__ costs ~1 us per lookup.
        base = self._modules["base_layer"]
        weight, bias = _param(base, "weight"), _param(base, "bias")
        a = _param(self._modules["lora_A"]._modules[name], "weight")  # (r, in)
        b = _param(self._modules["lora_B"]._modules[name], "weight")  # (out, r)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        device_type = x.device.type
        if device_type != "meta" and torch.is_autocast_enabled(device_type):  # meta: memory dry runs
            # cast once here: autocast would cast x separately for the base and the low-rank product
            x2 = x2.to(torch.get_autocast_dtype(device_type))
        out = base_output(x2, self.kind, weight, bias)
        a, bt = self._low_rank(name, a, b, out.dtype)
        p = self.dropout[name]
        xd, gain = drop(x2, p) if p > 0 and self.training else (x2, 1.0)
        h = F.linear(xd, a)  # (N, r)
        out = out.addmm_(h if h.dtype == out.dtype else h.to(out.dtype), bt, alpha=self.scaling[name] * gain)
        return out.view(*lead, out.shape[-1])

    def _group_forward(self, x: torch.Tensor, name: str) -> torch.Tensor | None:
        """Training with dropout: this layer's output computed with its siblings' (kept for their calls on
        the same ``x``) by :func:`~deepnotes.peft.methods.lora.fused.group_lora`; None where this layer
        cannot join (autocast, mixed dtypes: the layer computes alone)."""
        siblings = self.siblings
        out = siblings.take(self, x)
        if out is not None:
            return out
        device_type = x.device.type
        if device_type != "meta" and torch.is_autocast_enabled(device_type):
            return None
        p = self.dropout[name]
        own = self._fusion_member(name, p, x.dtype)
        if own is None:
            return None
        group, members = [self], [own]
        for m in siblings.members:
            member = m._fusion_member(name, p, x.dtype) if m is not self else None
            if member is not None:
                group.append(m)
                members.append(member)
        if len(group) == 1:
            return None
        lead = x.shape[:-1]
        outs = [out.view(*lead, out.shape[-1]) for out in group_lora(x.reshape(-1, x.shape[-1]), p, members)]
        siblings.put(x, {id(m): out for m, out in zip(group[1:], outs[1:], strict=True)})
        return outs[0]

    def _fusion_member(self, name: str, p: float, dtype: torch.dtype) -> Member | None:
        """This layer's part of a group running adapter ``name`` with dropout ``p`` on inputs of ``dtype``,
        or None if it cannot join (another adapter active, merged, disabled, eval mode, another dropout or
        dtype)."""
        if not self.fuse or self.kind == "embedding" or self._unmerged_active() != name \
                or name not in self.lora_A or not self.training or self.dropout[name] != p:
            return None
        base = self._modules["base_layer"]
        weight, bias = _param(base, "weight"), _param(base, "bias")
        a = _param(self._modules["lora_A"]._modules[name], "weight")
        b = _param(self._modules["lora_B"]._modules[name], "weight")
        if any(t is not None and t.dtype != dtype for t in (weight, bias, a, b)):
            return None
        return (self.kind, weight, bias, a, b, self.scaling[name])

    def _low_rank(self, name: str, a: torch.Tensor, b: torch.Tensor,
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Adapter ``name``'s ``A`` (r, in) and ``B^T`` (r, out) in the compute dtype ``dtype``.

        The in-place GEMM needs B in the output's dtype (under autocast, half precision while B is fp32).
        Without autograd (inference) the cast copies are cached until the weights change, so an unmerged
        adapter costs two small GEMMs per layer and no casts.
        """
        if b.dtype == dtype:
            return a, b.t()
        if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
            return a, b.t().to(dtype)
        if torch.compiler.is_compiling():
            # the cache's key (data pointers, versions) would break the graph and recompile it per layer
            # shape; in a compiled graph the casts are cheap kernels the compiler fuses anyway
            return a.to(dtype), b.t().to(dtype)
        key = (name, dtype, a.data_ptr(), b.data_ptr(), a._version, b._version)
        cached = self._cast_cache
        if cached is None or cached[0] != key:
            cached = self._cast_cache = (key, a.to(dtype), b.t().to(dtype))
        return cached[1], cached[2]

    def _embedding_forward(self, ids: torch.Tensor, name: str) -> torch.Tensor:
        base = self.base_layer
        out = base(ids)
        a = self.lora_embedding_A[name].t()  # (num, r): look up rows like the base table
        h = F.embedding(ids, a, base.padding_idx, base.max_norm, base.norm_type, base.scale_grad_by_freq,
                        base.sparse)
        return out + (h @ self.lora_embedding_B[name].t()) * self.scaling[name]

    def extra_repr(self) -> str:
        return f"kind={self.kind}, adapters={self.adapter_names()}, active={self.active_adapter}"


class ModulesToSave(nn.Module):
    """A module trained in full: a trainable copy per adapter name, the original kept frozen.

    Layout as in peft: ``original_module`` and ``modules_to_save.<name>``.
    """

    def __init__(self, original: nn.Module) -> None:
        super().__init__()
        self.original_module = original
        self.modules_to_save = nn.ModuleDict()
        self.active_adapter: str | None = None
        self.disabled = False

    def add_adapter(self, name: str) -> None:
        import copy

        self.modules_to_save[name] = copy.deepcopy(self.original_module)
        if self.active_adapter is None:
            self.active_adapter = name

    def adapter_names(self) -> list[str]:
        return list(self.modules_to_save.keys())

    def forward(self, *args, **kwargs):
        name = self.active_adapter
        if self.disabled or name is None or name not in self.modules_to_save:
            return self.original_module(*args, **kwargs)
        return self.modules_to_save[name](*args, **kwargs)
