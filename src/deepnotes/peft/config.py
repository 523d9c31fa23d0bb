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


# the method settings `peft train` takes as flags and top-level config keys; which apply to which method is
# the registry's `knobs` (a knob the chosen method lacks is an error naming it)
KNOBS = ("r", "alpha", "dropout", "target_modules", "bottleneck", "prefix_length")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass
class TrainConfig:
    """Every setting of ``deepnotes peft train`` (``batch_size`` is per process under torchrun).

    ``lr``: None takes the method's default; ``save_every``: steps between checkpoints and log records
    (None: ``min(steps, 500)``); ``method_config``: fields of the method's config that differ from its
    default for the model (config.json stores the whole resolved method config here).

    The method's knobs (None: the method's default): LoRA ``r`` (8), ``alpha`` (16), ``dropout`` (0) and
    ``target_modules`` (module names, a list or one comma-separated string; default: the architecture's
    attention and MLP projections), the adapters' ``bottleneck`` width (model width / 16), prefix and prompt
    tuning's ``prefix_length`` (virtual tokens, 10). A knob the method lacks is an error naming it."""

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
    r: int | None = None
    alpha: float | None = None
    dropout: float | None = None
    target_modules: list[str] | str | None = None
    bottleneck: int | None = None
    prefix_length: int | None = None

    def __post_init__(self) -> None:
        _check_choice(self.method, METHODS, "PEFT method")
        _check_choice(self.task, TASKS, "task")
        _check_min(self, ("steps", "batch_size", "n_train", "n_test", "save_every", "r", "bottleneck",
                          "prefix_length"))
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be greater than 0, got {self.lr}")
        if self.method_config is not None and not isinstance(self.method_config, Mapping):
            raise ValueError(f"method_config must be a mapping of option: value, got {self.method_config!r}")
        if self.alpha is not None and self.alpha <= 0:
            raise ValueError(f"alpha must be greater than 0, got {self.alpha}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.target_modules, str):
            self.target_modules = [t.strip() for t in self.target_modules.split(",") if t.strip()]
        if self.target_modules is not None and (not self.target_modules or not all(
                isinstance(t, str) for t in self.target_modules)):
            raise ValueError("target_modules must name modules (e.g. q_proj,v_proj), "
                             f"got {self.target_modules!r}")
        self.method_options()  # a knob the method lacks, or one method_config contradicts: refused now

    def method_options(self) -> dict[str, Any]:
        """``method_config`` with the knobs given as flags or keys filled in (the method's field names)."""
        return knob_options(self.method, {k: getattr(self, k) for k in KNOBS}, self.method_config)


def knob_options(method: str, knobs: Mapping[str, Any],
                 base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``base`` (method config fields) with the ``knobs`` that are not None filled in under the method's
    field names; a knob the method lacks, or one that disagrees with ``base``, is a ValueError naming it."""
    own = METHODS[method].knobs
    wrong = [k for k, v in knobs.items() if v is not None and k not in own]
    if wrong:
        raise ValueError(f"{_flag(wrong[0])} does not apply to --method {method} "
                         f"(its options: {', '.join(map(_flag, own)) or 'none'})")
    opts = dict(base or {})
    for knob, name in own.items():
        value = knobs.get(knob)
        if value is None:
            continue
        if name in opts and opts[name] != value:
            raise ValueError(f"{_flag(knob)} {value} and method_config {name}={opts[name]!r} differ; "
                             "give one")
        opts[name] = value
    return opts


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


__all__ = ["DEFAULT_SAVE_EVERY", "KNOBS", "PEFT_TYPES", "AdapterConfig", "LoraConfig", "PrefixConfig",
           "PretrainConfig", "PromptConfig", "TrainConfig", "config_from_peft", "knob_options"]
