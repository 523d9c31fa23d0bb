"""LoRA's configuration and its peft ``adapter_config.json`` form (peft's field names: ``lora_alpha``,
``lora_dropout``...), so that ``peft.PeftModel`` reads our folders and we read peft's."""

from __future__ import annotations

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
        options = ("use_dora", "layers_to_transform", "rank_pattern", "alpha_pattern")
        unsupported = [k for k in options if d.get(k)]
        if unsupported:
            raise ValueError(f"adapter_config.json uses LoRA options deepnotes does not implement: "
                             f"{unsupported}")
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
