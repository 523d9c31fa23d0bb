"""deepnotes.peft: LoRA, bottleneck adapters, prefix and prompt tuning on transformers models.

    from deepnotes.peft import LoraConfig, apply, save_adapter
    model = apply(model, LoraConfig(r=8, alpha=16, target_modules=["c_attn"]))
"""

from deepnotes.peft.api import (
    apply,
    merge,
    merge_and_unload,
    set_adapter,
    trainable_parameters,
    unmerge,
)
from deepnotes.peft.config import AdapterConfig, LoraConfig, PrefixConfig, PromptConfig
from deepnotes.peft.io import load_adapter, save_adapter

__all__ = [
    "AdapterConfig",
    "LoraConfig",
    "PrefixConfig",
    "PromptConfig",
    "apply",
    "load_adapter",
    "merge",
    "merge_and_unload",
    "save_adapter",
    "set_adapter",
    "trainable_parameters",
    "unmerge",
]
