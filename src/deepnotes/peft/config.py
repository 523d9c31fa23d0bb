"""Configuration dataclasses of the four methods, and their peft-style ``adapter_config.json`` form.

LoRA's JSON uses peft's field names (``lora_alpha``, ``lora_dropout``, ...) so that ``peft.PeftModel``
reads our folders and we read peft's. Prompt tuning and prefix tuning use peft's field names too; the
bottleneck adapters, which peft lacks, use the same layout under ``peft_type = "BOTTLENECK"``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoraConfig:
    """LoRA: ``W x + (alpha / r) * B A dropout(x)`` on the target layers (``alpha / sqrt(r)`` with rsLoRA).

    ``target_modules``: module names (a name matches itself and any dotted path ending in it) or one
    regular expression matched against full module paths. ``init``: ``"kaiming"`` (A kaiming-uniform,
    peft's default) or ``"gaussian"`` (A ~ N(0, 1/r)); B starts at zero. ``bias``: ``"none"``, ``"all"``
    (every bias in the model trains) or ``"lora_only"`` (biases of the wrapped layers train).
    ``modules_to_save``: modules trained in full and saved with the adapter (e.g. a new head).
    """

    r: int = 8
    alpha: float = 16
    dropout: float = 0.0
    target_modules: list[str] | str = field(default_factory=lambda: ["c_attn"])
    use_rslora: bool = False
    init: str = "kaiming"
    bias: str = "none"
    modules_to_save: list[str] | None = None
    method: str = "lora"

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ValueError(f"LoraConfig.r must be positive, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoraConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.init not in ("kaiming", "gaussian"):
            raise ValueError(f"LoraConfig.init must be 'kaiming' or 'gaussian', got {self.init!r}")
        if self.bias not in ("none", "all", "lora_only"):
            raise ValueError(f"LoraConfig.bias must be 'none', 'all' or 'lora_only', got {self.bias!r}")

    @property
    def scaling(self) -> float:
        return self.alpha / (self.r**0.5 if self.use_rslora else self.r)

    def to_peft(self, fan_in_fan_out: bool) -> dict[str, Any]:
        """The ``adapter_config.json`` peft writes for the same adapter."""
        return {
            "peft_type": "LORA",
            "task_type": None,
            "base_model_name_or_path": None,
            "inference_mode": True,
            "r": self.r,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": self.target_modules,
            "use_rslora": self.use_rslora,
            "init_lora_weights": True if self.init == "kaiming" else "gaussian",
            "bias": self.bias,
            "modules_to_save": self.modules_to_save,
            "fan_in_fan_out": fan_in_fan_out,
        }

    @classmethod
    def from_peft(cls, d: dict[str, Any]) -> LoraConfig:
        unsupported = [k for k in ("use_dora", "layers_to_transform", "rank_pattern", "alpha_pattern") if d.get(k)]
        if unsupported:
            raise ValueError(f"adapter_config.json uses LoRA options deepnotes does not implement: {unsupported}")
        init = d.get("init_lora_weights", True)
        return cls(
            r=int(d["r"]),
            alpha=float(d.get("lora_alpha", 8)),
            dropout=float(d.get("lora_dropout", 0.0)),
            target_modules=d["target_modules"],
            use_rslora=bool(d.get("use_rslora", False)),
            init="gaussian" if init == "gaussian" else "kaiming",
            bias=d.get("bias", "none"),
            modules_to_save=d.get("modules_to_save"),
        )


@dataclass
class AdapterConfig:
    """Bottleneck adapters: ``h + up(act(down(h)))`` with ``down: d -> d / reduction_factor``.

    ``kind``: ``"houlsby"`` (after attention and after the feed-forward), ``"pfeiffer"`` (after the
    feed-forward only) or ``"parallel"`` (``FFN(x) + scale * adapter(x)``, He et al. 2022).
    The up projection starts at zero, so a fresh adapter is the identity.
    """

    kind: str = "houlsby"
    reduction_factor: int = 16
    activation: str = "relu"
    scale: float = 1.0
    method: str = "adapter"

    def __post_init__(self) -> None:
        if self.kind not in ("houlsby", "pfeiffer", "parallel"):
            raise ValueError(f"AdapterConfig.kind must be houlsby, pfeiffer or parallel, got {self.kind!r}")
        if self.reduction_factor < 1:
            raise ValueError(f"AdapterConfig.reduction_factor must be >= 1, got {self.reduction_factor}")

    def to_peft(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("method")
        return {"peft_type": "BOTTLENECK", **d}

    @classmethod
    def from_peft(cls, d: dict[str, Any]) -> AdapterConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"method"}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class PrefixConfig:
    """Prefix tuning (Li & Liang 2021): ``num_virtual_tokens`` trainable keys/values in every layer.

    ``projection``: train through the MLP reparameterisation ``P = MLP(E)`` (E: tokens x hidden_size),
    folded into plain prefixes after training. ``sites`` for encoder-decoder models: any of
    ``"encoder"`` (encoder self-attention), ``"decoder"`` (decoder self-attention), ``"cross"``.
    """

    num_virtual_tokens: int = 10
    projection: bool = True
    hidden_size: int = 512
    sites: list[str] = field(default_factory=lambda: ["encoder", "decoder", "cross"])
    method: str = "prefix"

    def __post_init__(self) -> None:
        bad = [s for s in self.sites if s not in ("encoder", "decoder", "cross")]
        if bad or not self.sites:
            raise ValueError(f"PrefixConfig.sites must be a non-empty subset of encoder, decoder, cross; got {bad}")
        if self.num_virtual_tokens < 1:
            raise ValueError("PrefixConfig.num_virtual_tokens must be >= 1")

    def to_peft(self) -> dict[str, Any]:
        return {
            "peft_type": "PREFIX_TUNING",
            "num_virtual_tokens": self.num_virtual_tokens,
            "prefix_projection": self.projection,
            "encoder_hidden_size": self.hidden_size,
            "sites": self.sites,
        }

    @classmethod
    def from_peft(cls, d: dict[str, Any]) -> PrefixConfig:
        return cls(
            num_virtual_tokens=int(d["num_virtual_tokens"]),
            projection=bool(d.get("prefix_projection", False)),
            hidden_size=int(d.get("encoder_hidden_size", 512)),
            sites=d.get("sites", ["decoder"]),
        )


@dataclass
class PromptConfig:
    """Prompt tuning (Lester et al. 2021): ``num_virtual_tokens`` trainable input embeddings.

    ``init``: ``"vocab"`` (copies of random vocabulary embeddings) or ``"random"``.
    """

    num_virtual_tokens: int = 20
    init: str = "vocab"
    method: str = "prompt"

    def __post_init__(self) -> None:
        if self.init not in ("vocab", "random"):
            raise ValueError(f"PromptConfig.init must be 'vocab' or 'random', got {self.init!r}")

    def to_peft(self) -> dict[str, Any]:
        return {
            "peft_type": "PROMPT_TUNING",
            "num_virtual_tokens": self.num_virtual_tokens,
            "prompt_tuning_init": "RANDOM" if self.init == "random" else "VOCAB",
        }

    @classmethod
    def from_peft(cls, d: dict[str, Any]) -> PromptConfig:
        return cls(num_virtual_tokens=int(d["num_virtual_tokens"]),
                   init="random" if d.get("prompt_tuning_init") == "RANDOM" else "vocab")


AnyConfig = LoraConfig | AdapterConfig | PrefixConfig | PromptConfig

PEFT_TYPES: dict[str, type] = {
    "LORA": LoraConfig,
    "BOTTLENECK": AdapterConfig,
    "PREFIX_TUNING": PrefixConfig,
    "PROMPT_TUNING": PromptConfig,
}


def config_from_peft(d: dict[str, Any], source: str = "adapter_config.json") -> AnyConfig:
    """Parse an ``adapter_config.json`` dict into one of our configs (error names the field)."""
    kind = d.get("peft_type")
    if kind not in PEFT_TYPES:
        raise ValueError(f"{source}: field peft_type={kind!r} is not one of {', '.join(PEFT_TYPES)}")
    try:
        return PEFT_TYPES[kind].from_peft(d)
    except KeyError as exc:
        raise ValueError(f"{source}: field {exc.args[0]!r} is missing") from exc
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from exc
