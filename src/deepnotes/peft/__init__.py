"""deepnotes.peft: LoRA, bottleneck adapters, prefix and prompt tuning on transformers models.

    from deepnotes.peft import LoraConfig, apply, save_adapter
    model = apply(model, LoraConfig(r=8, alpha=16, target_modules=["c_attn"]))

The methods live in :mod:`deepnotes.peft.methods` (one module each, registered in :data:`METHODS`);
:func:`fine_tune` / :func:`run_pretraining` train from a :class:`TrainConfig` / :class:`PretrainConfig` on
the training engine (``deepnotes peft train|pretrain``; ``deepnotes.peft.train.train`` and
``deepnotes.peft.pretrain.pretrain`` take the same settings as arguments).
"""

from deepnotes.peft.api import (
    apply,
    merge,
    merge_and_unload,
    set_adapter,
    trainable_parameters,
    unmerge,
)
from deepnotes.peft.config import (
    AdapterConfig,
    LoraConfig,
    PrefixConfig,
    PretrainConfig,
    PromptConfig,
    TrainConfig,
)
from deepnotes.peft.io import load_adapter, save_adapter
from deepnotes.peft.methods import METHODS, PeftMethod
from deepnotes.peft.pretrain import run_pretraining
from deepnotes.peft.train import fine_tune, load_run

__all__ = [
    "METHODS",
    "AdapterConfig",
    "LoraConfig",
    "PeftMethod",
    "PrefixConfig",
    "PretrainConfig",
    "PromptConfig",
    "TrainConfig",
    "apply",
    "fine_tune",
    "load_adapter",
    "load_run",
    "merge",
    "merge_and_unload",
    "run_pretraining",
    "save_adapter",
    "set_adapter",
    "trainable_parameters",
    "unmerge",
]
