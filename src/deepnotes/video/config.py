"""The training config: every field is a ``deepnotes video train`` flag (underscores become dashes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class TrainConfig:
    model: str
    train: str  # annotation list (video or raw-frame format)
    out: str  # run folder
    val: str | None = None
    root: str | None = None  # paths in the lists are relative to this (default: each list's folder)
    classes: str | None = None  # class names, one per line (default: classes.txt next to the train list)
    flip_map: str | None = None  # JSON {label: label after horizontal flip} (default: flip_map.json there)
    flip: bool = True
    list_format: str = "auto"  # video, rawframes, auto
    frame_template: str = "img_{:05d}.jpg"
    start_index: int = 1  # index of the first frame file in raw-frame folders (mmaction2: 1; some tools: 0)
    modality: str = "rgb"  # key of deepnotes.video.training.LOADERS
    epochs: int = 10
    batch_size: int = 8  # per process
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    segments: int = 8  # frames per clip (TSN segments, or the dense clip length)
    sampling: str = "segments"  # segments (TSN) or dense
    frame_interval: int = 1  # dense sampling only
    input_size: int = 112
    crop: str = "multiscale"  # multiscale, resized, center
    depth: int = 18
    width: int = 64
    stem_stride: int | None = None  # None: 4 for inputs >= 112, 2 for >= 48, else 1
    dropout: float = 0.5
    eval_every: int = 1  # validate every k epochs (and always after the last)
    freeze_bn: bool = False  # BN uses running statistics (makes DDP match one process exactly on CPU)
    cache: bool = False  # keep decoded videos in memory (small datasets)
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    resume: bool = False
    # two-stream (--model two_stream; deepnotes.video.two_stream): flow lists written by `deepnotes video
    # flow`, matched line by line with --train/--val; videos without stored flow get it computed on the fly
    flow_train: str | None = None
    flow_val: str | None = None
    new_length: int = 5  # flow fields stacked per segment (2L input channels of the temporal stream)
    fusion: str = "weighted:1,1.5"  # weighted[:w_rgb,w_flow] or learned
    stream: str = "tsn"  # the recogniser both streams use
    flow_method: str = "dis"  # for flow computed on the fly
    flow_bound: float = 20.0  # the bound the flow was stored with

    def resolved_stem_stride(self) -> int:
        if self.stem_stride is not None:
            return self.stem_stride
        return 4 if self.input_size >= 112 else 2 if self.input_size >= 48 else 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
