"""From a training config to a dataset: which frames a clip holds (the modality's frame loader), how they are
augmented (its transforms), and the class names and flip map that sit beside the lists.

A modality is what a clip carries: ``rgb`` frames, or ``two_stream`` (each RGB frame followed by the stacked
optical flow around it, :mod:`deepnotes.video.two_stream.dataset`). A model's registry entry names the
modality its clips need (``MODELS.info(name)["modality"]``); add one with ``MODALITIES.register``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepnotes.core.registry import Registry
from deepnotes.video.config import TrainConfig
from deepnotes.video.data.dataset import RGBLoader, VideoDataset
from deepnotes.video.data.lists import ListError, VideoRecord, read_classes
from deepnotes.video.data.sampling import ClipSampler
from deepnotes.video.data.transforms import Compose, eval_transform, train_transform
from deepnotes.video.two_stream.dataset import TwoStreamLoader, two_stream_loader, two_stream_transform

log = logging.getLogger("deepnotes.video")


@dataclass(frozen=True)
class Modality:
    """``loader(cfg)``: the frame loader of :class:`VideoDataset` (``loader(record, indices)`` -> (T, H, W, C)
    uint8); ``transform(cfg, train, crops, label_map)``: the clip transform (training: one view; testing:
    (crops, T, C, H, W)); ``on_frames(cfg, frames_loader)``: the loader over frames already in memory (the
    sliding windows of untrimmed detection; two-stream adds the flow computed on the fly)."""

    loader: Callable[[TrainConfig], Callable]
    transform: Callable[..., Compose]
    on_frames: Callable[[Any, Callable], Callable] = lambda _cfg, frames: frames


class CachedLoader:
    """Decode each video once and keep all its frames (for small datasets and repeated experiments)."""

    def __init__(self, inner: RGBLoader) -> None:
        self.inner, self._videos = inner, {}

    def num_frames(self, record: VideoRecord) -> int:
        return len(self._all(record))

    def _all(self, record: VideoRecord) -> np.ndarray:
        key = str(record.path)
        if key not in self._videos:
            total = self.inner.num_frames(record)
            self._videos[key] = self.inner(record, np.arange(total))
        return self._videos[key]

    def __call__(self, record: VideoRecord, indices: np.ndarray) -> np.ndarray:
        return self._all(record)[np.clip(indices, 0, len(self._all(record)) - 1)]


def rgb_loader(cfg: TrainConfig) -> Callable:
    loader = RGBLoader(cfg.frame_template, cfg.start_index)
    return CachedLoader(loader) if cfg.cache else loader


def rgb_transform(cfg: TrainConfig, train: bool, crops: int = 1,
                  label_map: dict[int, int] | None = None) -> Compose:
    # the run's input normalisation (ImageNet's statistics unless the config says otherwise; stored in the
    # checkpoint's data meta, so eval and predict normalise as training did)
    if train:
        return train_transform(cfg.input_size, cfg.crop, cfg.flip, label_map, cfg.mean, cfg.std,
                               scales=cfg.crop_scales)
    return eval_transform(cfg.input_size, crops, cfg.mean, cfg.std)


def two_stream_frames(cfg: TrainConfig) -> Callable:
    """RGB frames plus the flow fields centred on each, from the stored flow lists or computed on the fly."""
    return two_stream_loader(cfg, rgb_loader(cfg))


def two_stream_on_frames(cfg: Any, frames: Callable) -> TwoStreamLoader:
    """In-memory RGB frames plus the flow computed on the fly between them."""
    return TwoStreamLoader(frames, None, cfg.new_length, cfg.flow_bound, cfg.flow_method)


MODALITIES: Registry[Modality] = Registry("modality")
MODALITIES.register("rgb", Modality(rgb_loader, rgb_transform))
# one crop and flip shared by RGB and flow; flow values follow them (a flip negates x)
MODALITIES.register("two_stream", Modality(two_stream_frames, two_stream_transform, two_stream_on_frames))


def sampler_of(cfg: TrainConfig) -> ClipSampler:
    return ClipSampler(cfg.sampling, cfg.segments, cfg.frame_interval)


def make_dataset(cfg: TrainConfig, records: list[VideoRecord], train: bool, num_clips: int = 1,
                 crops: int = 1, label_map: dict[int, int] | None = None) -> VideoDataset:
    """The clips of ``records`` as ``cfg.modality`` reads and augments them (``num_clips`` x ``crops``
    views per video in testing)."""
    modality = MODALITIES[cfg.modality]
    transform = modality.transform(cfg, train, crops, label_map)
    return VideoDataset(records, sampler_of(cfg), transform, train, modality.loader(cfg), num_clips, cfg.seed)


def class_names(cfg: TrainConfig, records: list[VideoRecord]) -> list[str]:
    """``cfg.classes`` (the names, or a file of them), else ``classes.txt`` beside the train list, else
    "0".."K-1" with K = ``cfg.num_classes`` (``--num-classes``) or, without it, the largest label + 1 — an
    inference that is said (a warning naming the list line of the largest label), never silent. A class list
    and ``--num-classes`` that disagree are an error; labels >= K are refused by ``read_list``, naming the
    line."""
    names = _listed_class_names(cfg)
    k = cfg.num_classes
    if names is not None:
        if k is not None and k != len(names):
            raise ListError(f"--num-classes {k} but the class list names {len(names)} classes; drop one of "
                            "them or make them agree")
        return names
    if k is None:
        top = max(records, key=lambda r: r.label)
        k = top.label + 1
        log.warning("no classes.txt: %d classes inferred from the largest label %d at %s; pass "
                    "--num-classes or a class list", k, top.label, top.source)
    return [str(i) for i in range(k)]


def _listed_class_names(cfg: TrainConfig) -> list[str] | None:
    """The names ``cfg.classes`` gives (a list, or a file), else those of ``classes.txt`` beside the train
    list, else None."""
    if isinstance(cfg.classes, list | tuple):
        return [str(c) for c in cfg.classes]
    path = Path(cfg.classes) if cfg.classes else Path(cfg.train).parent / "classes.txt"
    return read_classes(path) if cfg.classes or path.is_file() else None


def flip_map(cfg: TrainConfig, num_classes: int) -> dict[int, int]:
    """``{label: label after a horizontal flip}`` from ``cfg.flip_map``, else ``flip_map.json`` beside the
    train list, else ``{}``; every key and value must be a class index and the map its own inverse."""
    path = Path(cfg.flip_map) if cfg.flip_map else Path(cfg.train).parent / "flip_map.json"
    if not (cfg.flip_map or path.is_file()):
        return {}
    try:
        mapping = {int(k): int(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError) as exc:
        raise ListError(f"{path}: expected a JSON object {{label: label}}: {exc}") from None
    _check_flip_map(path, mapping, num_classes)
    return mapping


def _check_flip_map(path: Path, mapping: dict[int, int], num_classes: int) -> None:
    bad = [(k, v) for k, v in mapping.items() if not (0 <= k < num_classes and 0 <= v < num_classes)]
    if bad:
        raise ListError(f"{path}: entry {bad[0][0]} -> {bad[0][1]} is outside the class range "
                        f"[0, {num_classes}) (labels are the class indices of the lists)")
    # flipping twice is the identity, so the map must be its own inverse: 0 -> 1 needs 1 -> 0
    one_way = [(k, v) for k, v in mapping.items() if mapping.get(v, v) != k]
    if one_way:
        k, v = one_way[0]
        raise ListError(f"{path}: entry {k} -> {v} has no way back ({v} -> {mapping.get(v, v)}); a "
                        f"horizontal flip is its own inverse, so add \"{v}\": {k} (or drop the entry)")


def data_meta(cfg: TrainConfig) -> dict[str, Any]:
    """What eval/predict need to sample and transform clips the way training did (checkpoint meta)."""
    return {k: getattr(cfg, k) for k in ("segments", "sampling", "frame_interval", "input_size", "modality",
                                         "frame_template", "start_index", "list_format", "seed", "new_length",
                                         "flow_method", "flow_bound", "mean", "std")}


def eval_config(model: str, data: dict[str, Any], **overrides: Any) -> TrainConfig:
    """The config eval/predict read clips with: a checkpoint's ``data`` meta (:func:`data_meta`)."""
    return TrainConfig(model=model, train="", out="", **data, **overrides)
