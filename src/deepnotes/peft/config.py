"""Configs of the PEFT topic: each method's (defined beside the method, in ``methods/``) and the settings of
``deepnotes peft train`` (:class:`TrainConfig`) and ``deepnotes peft pretrain`` (:class:`PretrainConfig`).

Every field of the two run configs is a flag (underscores become dashes) and a key of the verb's
``--config FILE.yaml``; the run folder stores the resolved config, and ``--resume`` starts from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deepnotes.peft.data.tasks import TASKS
from deepnotes.peft.methods import (
    METHODS,
    PEFT_TYPES,
    AdapterConfig,
    LoraConfig,
    PrefixConfig,
    PromptConfig,
    config_from_peft,
)
from deepnotes.peft.models import ARCHS, SIZES

DEFAULT_SAVE_EVERY = 500  # steps between checkpoints: a killed run loses at most this many


def _check_choice(value: str, valid: Any, what: str) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def _check_min(cfg: Any, names: tuple[str, ...], low: int = 1) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value < low:
            raise ValueError(f"{name} must be at least {low}, got {value}")


@dataclass
class TrainConfig:
    """Every setting of ``deepnotes peft train`` (``batch_size`` is per process under torchrun).

    ``lr``: None takes the method's default; ``save_every``: steps between checkpoints and log records
    (None: ``min(steps, 500)``); ``method_config``: fields of the method's config that differ from its
    default for the model (config.json stores the whole resolved method config here)."""

    method: str
    model: str
    task: str
    out: str
    steps: int = 300
    batch_size: int = 8
    lr: float | None = None
    n_train: int = 2000
    n_test: int = 100
    save_every: int | None = None
    seed: int = 0
    device: str = "auto"
    train_file: str | None = None
    test_file: str | None = None
    method_config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_choice(self.method, METHODS, "PEFT method")
        _check_choice(self.task, TASKS, "task")
        _check_min(self, ("steps", "batch_size", "n_train", "n_test", "save_every"))
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be greater than 0, got {self.lr}")
        if self.method_config is not None and not isinstance(self.method_config, Mapping):
            raise ValueError(f"method_config must be a mapping of option: value, got {self.method_config!r}")


@dataclass
class PretrainConfig:
    """Every setting of ``deepnotes peft pretrain``. ``steps``: None is 800 for ``tiny``, 20000 for
    ``small``; ``minutes``: stop after this much training (this invocation only: not stored)."""

    arch: str
    out: str
    size: str = "tiny"
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    max_chars: int | None = None
    save_every: int = 500

    def __post_init__(self) -> None:
        _check_choice(self.arch, ARCHS, "--arch")
        _check_choice(self.size, SIZES, "--size")
        _check_min(self, ("steps", "batch_size", "max_chars"))
        if self.save_every < 1:
            raise ValueError(f"--save-every must be >= 1, got {self.save_every}")
        if self.lr <= 0:
            raise ValueError(f"lr must be greater than 0, got {self.lr}")
        if self.minutes is not None and self.minutes < 0:
            raise ValueError(f"minutes must be at least 0, got {self.minutes}")

    @property
    def target_steps(self) -> int:
        return self.steps or (800 if self.size == "tiny" else 20000)


__all__ = ["DEFAULT_SAVE_EVERY", "PEFT_TYPES", "AdapterConfig", "LoraConfig", "PrefixConfig",
           "PretrainConfig", "PromptConfig", "TrainConfig", "config_from_peft"]
