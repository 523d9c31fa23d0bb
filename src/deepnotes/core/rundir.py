"""Run folders: config, per-epoch metrics, the latest checkpoint, resume."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepnotes.core.checkpoint import atomic_write_json, load_checkpoint, read_meta, save_checkpoint

CHECKPOINT = "checkpoint.safetensors"
METRICS = "metrics.json"
CONFIG = "config.json"


@dataclass
class RunDir:
    """A training run's folder.

    Layout: ``config.json`` (what was asked), ``metrics.json`` (a list of records, one per period between
    checkpoints, each with a 1-based ``epoch`` and a global ``step``), ``checkpoint.safetensors`` (the last
    complete period; atomically replaced).
    """

    path: Path
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if (self.path / METRICS).is_file():
            self.metrics = json.loads((self.path / METRICS).read_text())

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.path / CONFIG, config)

    def read_config(self) -> dict[str, Any]:
        path = self.path / CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: is {self.path} a deepnotes run folder?")
        return json.loads(path.read_text())

    def log_epoch(self, entry: dict[str, Any]) -> None:
        """Append one record; a record of a step (or, in records without steps, an epoch) already logged
        (a period redone after a resume) is replaced."""
        key = "step" if "step" in entry else "epoch"
        value = entry.get(key)
        self.metrics = [m for m in self.metrics if value is None or m.get(key) != value]
        self.metrics.append(entry)
        atomic_write_json(self.path / METRICS, self.metrics)

    def drop_after(self, step: int) -> None:
        """Forget records past global ``step`` (written after the checkpoint a run resumes from)."""
        kept = [m for m in self.metrics if m.get("step", 0) <= step]
        if len(kept) != len(self.metrics):
            self.metrics = kept
            atomic_write_json(self.path / METRICS, self.metrics)

    def save(self, state: dict[str, Any], meta: dict[str, Any]) -> Path:
        return save_checkpoint(self.checkpoint_path, state, meta)

    def load(self, device: str = "cpu", expect: dict[str, Any] | None = None,
             expect_if_stored: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Load the checkpoint; ``expect`` lists meta fields that must match (e.g. ``{"model": "tsm"}``),
        ``expect_if_stored`` fields that must match when the checkpoint has them (older ones may not)."""
        if expect or expect_if_stored:
            meta = read_meta(self.checkpoint_path)
            wanted = {**(expect or {}), **{k: v for k, v in (expect_if_stored or {}).items() if k in meta}}
            for key, want in wanted.items():
                if meta.get(key) != want:
                    raise ValueError(
                        f"{self.checkpoint_path} was written for {key}={meta.get(key)!r}, not {want!r}; "
                        f"use another --out folder or the matching {flag_name(key)}"
                    )
        return load_checkpoint(self.checkpoint_path, device=device)


def flag_name(key: str) -> str:
    """How a user sets a run field: ``batch_size`` -> ``--batch-size``; the process count is torchrun's."""
    return "torchrun --nproc_per_node" if key == "world_size" else f"--{key.replace('_', '-')}"
