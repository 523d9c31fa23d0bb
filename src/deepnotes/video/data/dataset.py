"""Datasets and loaders. The sampling core is modality-agnostic: a ``FrameLoader`` turns a record and frame
indices into a (T, H, W, C) array, so RGB videos, frames folders and optical-flow folders share one class.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from deepnotes.core.distributed import ShardedBatchSampler
from deepnotes.video.data.decode import (
    DEFAULT_TEMPLATE,
    VideoReadError,
    count_frames,
    read_frame_folder,
    read_video,
)
from deepnotes.video.data.lists import VideoRecord
from deepnotes.video.data.sampling import ClipSampler

log = logging.getLogger("deepnotes.video")


class RGBLoader:
    """Reads RGB frames of a record: decoded video, or a frames folder named by ``template``."""

    def __init__(self, template: str = DEFAULT_TEMPLATE, start_index: int = 1) -> None:
        self.template, self.start_index = template, start_index
        self._counts: dict[str, int] = {}

    def num_frames(self, record: VideoRecord) -> int:
        if record.total_frames is not None:
            return record.total_frames
        key = str(record.path)
        if key not in self._counts:
            self._counts[key] = count_frames(record.path)
        return self._counts[key]

    def __call__(self, record: VideoRecord, indices: np.ndarray) -> np.ndarray:
        if record.is_frames:
            return read_frame_folder(record.path, indices, self.template, self.start_index)
        return read_video(record.path, indices)


class VideoDataset(Dataset):
    """Clips of the records.

    Item ``i`` is a dict ``{"clip": (C, T, H, W) float, "label": int, "index": i}`` in training and
    ``clip`` (V, C, T, H, W) with V = ``num_clips`` x crops in testing, or ``None`` when the video cannot
    be read (a warning is logged; :func:`collate` counts it). Randomness comes from (seed, epoch, index).
    """

    def __init__(self, records: list[VideoRecord], sampler: ClipSampler, transform: Callable, train: bool,
                 loader: Callable | None = None, num_clips: int = 1, seed: int = 0) -> None:
        self.records, self.sampler, self.transform, self.train = records, sampler, transform, train
        self.loader = loader or RGBLoader()
        self.num_clips, self.seed, self.epoch = num_clips, seed, 0
        self.strict = False  # True: raise VideoReadError instead of skipping (predict)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict | None:
        rec = self.records[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        try:
            total = self.loader.num_frames(rec)
            views = self.sampler(total, self.train, rng, self.num_clips)
            frames = self.loader(rec, np.concatenate(views))
        except VideoReadError as exc:
            if self.strict:
                raise
            log.warning("skipping %s (%s): %s", rec.path, rec.source, exc)
            return None
        clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        clips, label = [], rec.label
        for part in clip.split(len(views[0])):  # one (T, C, H, W) chunk per temporal view
            out, label = self.transform(part, rec.label, rng)
            clips.append(out)
        if self.train:
            return {"clip": clips[0].transpose(0, 1).contiguous(), "label": label, "index": i}
        stacked = torch.cat(clips)  # (V, T, C, H, W): views = clips x crops
        return {"clip": stacked.transpose(1, 2).contiguous(), "label": rec.label, "index": i}


@dataclass
class Batch:
    clips: torch.Tensor | None  # (N, C, T, H, W) or (N, V, C, T, H, W)
    labels: torch.Tensor
    indices: list[int]
    skipped: list[int]  # dataset indices that could not be read


def collate(items: list[dict | None], indices: list[int] | None = None) -> Batch:
    ok = [it for it in items if it is not None]
    skipped = [] if indices is None else [i for i, it in zip(indices, items, strict=True) if it is None]
    if not ok:
        return Batch(None, torch.zeros(0, dtype=torch.long), [], skipped)
    return Batch(torch.stack([it["clip"] for it in ok]), torch.tensor([it["label"] for it in ok]),
                 [it["index"] for it in ok], skipped)


class _IndexedCollate:
    """Collate that also knows which dataset indices the batch asked for (to name skipped videos)."""

    def __call__(self, pairs: list[tuple[int, dict | None]]) -> Batch:
        return collate([p[1] for p in pairs], [p[0] for p in pairs])


class _WithIndex(Dataset):
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return i, self.dataset[i]


def make_loader(dataset: VideoDataset, batch_size: int, shuffle: bool, workers: int = 0, seed: int = 0,
                rank: int = 0, world_size: int = 1, drop_last: bool = False) -> DataLoader:
    """A DataLoader yielding :class:`Batch`; call ``loader.batch_sampler.set_epoch(e)`` and
    ``dataset.set_epoch(e)`` (see :func:`set_epoch`) before each epoch."""
    sampler = ShardedBatchSampler(len(dataset), batch_size, shuffle, seed, rank, world_size, drop_last)
    return DataLoader(_WithIndex(dataset), batch_sampler=sampler, num_workers=workers,
                      collate_fn=_IndexedCollate(), persistent_workers=False,
                      multiprocessing_context=worker_context() if workers > 0 else None)


def worker_context() -> multiprocessing.context.BaseContext:
    """How loader workers start: forked from a clean server process, not from this one. A process that has
    decoded with PyAV's frame threads cannot be forked safely: with av 18.1.1 a worker forked after the main
    process decoded a video hangs in its first decode (measured 2026-12-07; 18.1.0 did not). The server
    imports the data modules once, so a worker still starts in milliseconds."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "deepnotes.video.data.dataset"])
    return ctx


def set_epoch(loader: DataLoader, epoch: int) -> None:
    loader.batch_sampler.set_epoch(epoch)
    loader.dataset.dataset.set_epoch(epoch)
