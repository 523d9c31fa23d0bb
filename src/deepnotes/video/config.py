"""The training config: every field is a ``deepnotes video train`` flag (underscores become dashes) and a
key of its ``--config FILE.yaml``.

``TrainConfig(...)`` checks the numeric ranges (a batch size of 0 is a ValueError naming ``--batch-size``, not
a ZeroDivisionError deep in the sampler); :meth:`TrainConfig.from_dict` also refuses unknown keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from deepnotes.core.config import build_config, parse_hw
from deepnotes.nn.pretrained import IMAGENET_MEAN, IMAGENET_STD
from deepnotes.video.data.transforms import MOTION_SCALES, RGB_SCALES

# what a run's config.json stores beside the fields: the run's facts, not settings anyone asked for (its
# ``classes`` holds the class names the run trained on, a value the field takes)
BOOKKEEPING = ("world_size",)
# field -> the smallest value it takes (the flags check the same at parse time)
AT_LEAST = {"epochs": 1, "batch_size": 1, "segments": 1, "frame_interval": 1, "eval_every": 1, "workers": 0,
            "depth": 1, "width": 1, "stem_stride": 1, "start_index": 0, "new_length": 1, "weight_decay": 0,
            "warmup_epochs": 0, "num_classes": 1}
POSITIVE = ("lr", "flow_bound")


@dataclass
class TrainConfig:
    model: str
    train: str  # annotation list (video or raw-frame format)
    out: str  # run folder
    val: str | None = None
    root: str | None = None  # paths in the lists are relative to this (default: each list's folder)
    # class names: a file with one per line, or the list (default: classes.txt next to the train list)
    classes: str | list[str] | None = None
    # K classes when there is no class list (default: the largest label + 1, said); labels >= K are an error
    num_classes: int | None = None
    flip_map: str | None = None  # JSON {label: label after horizontal flip} (default: flip_map.json there)
    flip: bool = True
    list_format: str = "auto"  # video, rawframes, auto
    frame_template: str = "img_{:05d}.jpg"
    start_index: int = 1  # index of the first frame file in raw-frame folders (mmaction2: 1; some tools: 0)
    modality: str = "rgb"  # key of deepnotes.video.data.pipeline.MODALITIES (a model's entry may set it)
    epochs: int = 10
    batch_size: int = 8  # per process
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    segments: int = 8  # frames per clip (TSN segments, or the dense clip length)
    sampling: str = "segments"  # segments (TSN) or dense
    frame_interval: int = 1  # dense sampling only
    # H,W of the network input; the crops are square, so H must equal W (one number, or [112, 112])
    input_size: int | tuple[int, int] = 112
    crop: str = "multiscale"  # multiscale, resized, center
    # fractions of the short side the multiscale crop's height and width pick from: TSN's and TSM's recipe
    # for their motion inputs (flow, RGB differences). Their RGB recipe adds 0.66 (every run before the field,
    # added 2026-12-07); that corner crop can cut a moving object out of the clip, and on the order-only
    # motion_hard set it left TSM at chance at one of three seeds (docs/video.md, "Order on harder data")
    crop_scales: tuple[float, ...] = MOTION_SCALES
    depth: int = 18
    width: int = 64
    stem_stride: int | None = None  # None: 4 for inputs >= 112, 2 for >= 48, else 1
    # True: every residual branch's last BN (and TDN's stem difference branch) starts at gamma 0, each block
    # as identity (every model's init before 2026-12-07); False (the default, torchvision's): at 1, so the
    # temporal modules act, and get gradients, from the first step. None (configs stored on 2026-12-07,
    # when only TDN defaulted to gamma 1) reads as False (docs/video.md, "Order on harder data")
    zero_init_residual: bool | None = False
    dropout: float = 0.5
    consensus: str = "avg"  # TSN's segmental consensus over the segments' scores: avg or max (--model tsn)
    # 2D ResNet weights to start from (torchvision/timm .pth, .safetensors, a transformers save_pretrained
    # folder): the backbone for 2D models, inflated for I3D and R(2+1)D (deepnotes.video.models.pretrained)
    pretrained: str | None = None
    # input normalisation, RGB on the 0-1 scale (config-file keys; ImageNet's, what pretrained weights and
    # every earlier run use); stored in the checkpoint's data meta for eval and predict
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    eval_every: int = 1  # validate every k epochs (and always after the last)
    freeze_bn: bool = False  # BN uses running statistics (makes DDP match one process exactly on CPU)
    cache: bool = False  # keep decoded videos in memory (small datasets)
    seed: int = 0
    device: str = "auto"
    workers: int = 2  # DataLoader worker processes; 0: load in the training process
    resume: bool = False
    # two-stream (--model two_stream; deepnotes.video.models.two_stream): flow lists written by `deepnotes
    # video flow`, matched line by line with --train/--val; videos without stored flow get it computed on
    # the fly
    flow_train: str | None = None
    flow_val: str | None = None
    new_length: int = 5  # flow fields stacked per segment (2L input channels of the temporal stream)
    fusion: str = "weighted:1,1.5"  # weighted[:w_rgb,w_flow] or learned
    stream: str = "tsn"  # the recogniser both streams use
    flow_method: str = "dis"  # for flow computed on the fly
    flow_bound: float = 20.0  # the bound the flow was stored with

    # what a run's config.json without the field trained with (runs from before the field existed), so
    # --resume continues them as they began
    STORED_DEFAULTS: ClassVar[dict[str, Any]] = {"crop_scales": RGB_SCALES}

    def __post_init__(self) -> None:
        self.input_size = square_size(self.input_size, "--input-size")
        self.check()

    def check(self) -> None:
        """Refuse values outside their range (ValueError naming the flag); run again by ``train``, since a
        config is mutable."""
        for name, low in AT_LEAST.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"--{_flag(name)} must be at least {low}, got {value}")
        for name in POSITIVE:
            if getattr(self, name) <= 0:
                raise ValueError(f"--{_flag(name)} must be positive, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3 or not all(isinstance(v, int | float) for v in value):
                raise ValueError(f"{name} must be three numbers (R, G, B on the 0-1 scale), got {value!r}")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std!r}")
        scales = self.crop_scales
        if not scales or not all(isinstance(v, int | float) and 0 < v <= 1 for v in scales):
            raise ValueError(f"--crop-scales must be fractions of the short side in (0, 1], got {scales!r}")

    def resolved_stem_stride(self) -> int:
        if self.stem_stride is not None:
            return self.stem_stride
        return 4 if self.input_size >= 112 else 2 if self.input_size >= 48 else 1

    def resolved_zero_init_residual(self) -> bool:
        return bool(self.zero_init_residual)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> TrainConfig:
        """A config from its keys; an unknown key is a ConfigError naming it (and the valid ones)."""
        return build_config(cls, (source, d))

    @classmethod
    def from_stored(cls, d: dict[str, Any], source: str = "config.json") -> TrainConfig:
        """A config from a run's ``config.json``, which also stores the run's :data:`BOOKKEEPING` keys."""
        return cls.from_dict({k: v for k, v in d.items() if k not in BOOKKEEPING}, source)


def square_size(value: Any, flag: str, why: str = "the video pipeline crops squares") -> int:
    """The side of an ``H,W`` size (one number: square) whose H equals W: the video transforms crop squares
    (short side, then a square crop or three along the long side) and the synthetic videos are square."""
    h, w = parse_hw(value, flag)  # a ConfigError (a ValueError) naming the flag
    if h != w:
        raise ValueError(f"{flag} {h},{w}: {why}, so H must equal W (give one number)")
    return h


def _flag(name: str) -> str:
    return name.replace("_", "-")
