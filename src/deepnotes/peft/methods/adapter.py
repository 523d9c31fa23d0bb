"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021; parallel: He et al. 2022).

An adapter is ``x -> up(act(down(x)))`` with ``down: d -> bottleneck`` (``d / reduction_factor`` unless
``bottleneck`` is given); ``up`` starts at zero so a fresh adapter changes nothing. Placement, found by module
names (per architecture in :mod:`~deepnotes.peft.methods.targets`: GPT-2, BART, LLaMA / Qwen2 / Mistral, T5):

- houlsby: after the attention output projection(s) and after the feed-forward output projection, each
  as ``y + adapter(y)`` before the block's residual add;
- pfeiffer: after the feed-forward output only;
- parallel: ``FFN(x) + scale * adapter(x)``, the adapter reading the feed-forward's input.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deepnotes.peft.methods.base import PEFT_PREFIX, PeftMethod, Tensors, config_overrides, set_child
from deepnotes.peft.methods.lora.layer import in_out_features
from deepnotes.peft.methods.targets import placement

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


@dataclass
class AdapterConfig:
    """Bottleneck adapters: ``h + up(act(down(h)))`` with ``down: d -> d / reduction_factor``.

    ``kind``: ``"houlsby"`` (after attention and after the feed-forward), ``"pfeiffer"`` (after the
    feed-forward only) or ``"parallel"`` (``FFN(x) + scale * adapter(x)``, He et al. 2022).
    ``bottleneck``: the adapter's hidden width; None: the wrapped layer's width / ``reduction_factor``.
    The up projection starts at zero, so a fresh adapter is the identity.
    """

    kind: str = "houlsby"
    reduction_factor: int = 16
    activation: str = "relu"
    scale: float = 1.0
    bottleneck: int | None = None
    method: str = "adapter"

    def __post_init__(self) -> None:
        if self.kind not in ("houlsby", "pfeiffer", "parallel"):
            raise ValueError(f"AdapterConfig.kind must be houlsby, pfeiffer or parallel, got {self.kind!r}")
        if self.reduction_factor < 1:
            raise ValueError(f"AdapterConfig.reduction_factor must be >= 1, got {self.reduction_factor}")
        if self.bottleneck is not None and self.bottleneck < 1:
            raise ValueError(f"AdapterConfig.bottleneck must be >= 1, got {self.bottleneck}")

    def hidden(self, dim: int) -> int:
        """The bottleneck width for a layer of width ``dim``."""
        return self.bottleneck if self.bottleneck is not None else max(1, dim // self.reduction_factor)

    def to_peft(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("method")
        return {"peft_type": "BOTTLENECK", **d}

    @classmethod
    def from_peft(cls, d: dict[str, Any]) -> AdapterConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"method"}
        return cls(**{k: v for k, v in d.items() if k in names})


class Bottleneck(nn.Module):
    """``(..., d) -> (..., d)``: ``up(act(down(x)))``, zero at initialisation."""

    def __init__(self, dim: int, hidden: int, activation: str, like: torch.Tensor) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"adapter activation {activation!r} unknown; valid: {', '.join(ACTIVATIONS)}")
        self.down = nn.Linear(dim, hidden, device=like.device, dtype=like.dtype)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(hidden, dim, device=like.device, dtype=like.dtype)
        nn.init.normal_(self.down.weight, std=1e-2)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class AdapterLayer(nn.Module):
    """Wraps an output projection: ``y = base(x)``; serial: ``y + a(y)``; parallel: ``y + s * a(tap)``.

    For the parallel kind ``tap`` is the feed-forward's input, recorded by a hook on the first FFN
    layer (the FFN is not always a module of its own, e.g. BART's fc1/fc2 live in the block).
    """

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.adapters = nn.ModuleDict()
        self.parallel: dict[str, bool] = {}
        self.scale: dict[str, float] = {}
        self.active_adapter: str | None = None
        self.disabled = False
        self._tap: torch.Tensor | None = None

    def adapter_names(self) -> list[str]:
        return list(self.adapters.keys())

    @property
    def weight(self) -> torch.Tensor:  # read by model code through the wrapped attribute (T5's ``wo``)
        return self.base_layer.weight

    def add_adapter(self, name: str, config: AdapterConfig, parallel: bool) -> None:
        dim = in_out_features(self.base_layer)[1]
        self.adapters[name] = Bottleneck(dim, config.hidden(dim), config.activation, self.base_layer.weight)
        self.parallel[name] = parallel
        self.scale[name] = config.scale
        if self.active_adapter is None:
            self.active_adapter = name

    def record(self, _module: nn.Module, args: tuple) -> None:
        self._tap = args[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        name = self.active_adapter
        if self.disabled or name is None:
            return y
        if self.parallel[name]:
            tap, self._tap = self._tap, None
            if tap is None:
                raise RuntimeError("parallel adapter found no recorded feed-forward input")
            return y + self.scale[name] * self.adapters[name](tap)
        return y + self.scale[name] * self.adapters[name](y)


def inject_adapters(model: nn.Module, config: AdapterConfig, name: str) -> list[str]:
    """Insert adapters called ``name`` (in place); returns the wrapped module paths."""
    names = [n for n, _ in model.named_modules() if ".base_layer" not in n and ".adapters." not in n]
    attn_re, ffn_in_re, ffn_out_re = (re.compile(p) for p in placement(model))
    ffn_out = [n for n in names if ffn_out_re.fullmatch(n)]
    ffn_in = [n for n in names if ffn_in_re.fullmatch(n)]
    attn_out = [n for n in names if attn_re.fullmatch(n)]
    if not ffn_out or (config.kind == "parallel" and len(ffn_in) != len(ffn_out)):
        raise ValueError(
            f"cannot place {config.kind} adapters in {type(model).__name__}: no feed-forward layers named "
            "like mlp.c_fc/mlp.c_proj, fc1/fc2, mlp.up_proj/mlp.down_proj or DenseReluDense.wi/wo; "
            f"modules: {', '.join(names[:40])}"
        )
    sites = ffn_out + (attn_out if config.kind == "houlsby" else [])
    for path in sites:
        module = model.get_submodule(path)
        if not isinstance(module, AdapterLayer):
            module = AdapterLayer(module)
            set_child(model, path, module)
        if name in module.adapters:
            raise ValueError(f"adapter {name!r} already exists on {path}")
        module.add_adapter(name, config, parallel=config.kind == "parallel")
    if config.kind == "parallel":
        for src, dst in zip(ffn_in, ffn_out, strict=True):
            model.get_submodule(src).register_forward_pre_hook(model.get_submodule(dst).record)
    return sites


def trainable(model: nn.Module, _config: AdapterConfig, name: str) -> None:
    for m in model.modules():
        if isinstance(m, AdapterLayer) and name in m.adapters:
            m.adapters[name].requires_grad_(True)


def save(model: nn.Module, config: AdapterConfig, name: str) -> tuple[dict[str, Any], Tensors]:
    """peft's layout under ``peft_type = "BOTTLENECK"``: ``...adapters.<name>.down.weight`` is stored as
    ``base_model.model....adapters.down.weight``."""
    out = {}
    for key, t in model.state_dict().items():
        parts = key.split(".")
        if "adapters" in parts and parts[parts.index("adapters") + 1] == name:
            i = parts.index("adapters") + 1
            out[PEFT_PREFIX + ".".join(parts[:i] + parts[i + 1 :])] = t
    return config.to_peft(), out


def model_keys(keys: list[str], name: str, _model: nn.Module) -> dict[str, str]:
    out = {}
    for key in keys:
        parts = key.removeprefix(PEFT_PREFIX).split(".")
        i = parts.index("adapters") + 1 if "adapters" in parts else len(parts)
        out[key] = ".".join(parts[:i] + ([name] if i < len(parts) else []) + parts[i:])
    return out


METHOD = PeftMethod(
    config=AdapterConfig, lr=5e-3,
    default_config=lambda _model, opts: AdapterConfig(**config_overrides(AdapterConfig, opts, "adapter")),
    inject=inject_adapters, trainable=trainable, save=save, model_keys=model_keys, peft_type="BOTTLENECK",
    wrappers=(AdapterLayer,), knobs={"bottleneck": "bottleneck"},
)
