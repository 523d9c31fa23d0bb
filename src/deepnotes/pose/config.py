"""Pose configs: the network's shape (:class:`PoseConfig`), the optimisation (:class:`TrainConfig`) and what
``deepnotes pose train`` takes as flags or ``--config FILE.yaml`` keys (:class:`RunConfig`, both in one)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# the backbone of checkpoints written before --stem-stride/--stages existed (issue 23): a 4x stem, 3 stages
LEGACY_STEM_STRIDE, LEGACY_STAGES = 4, 3
FRAMES = ("centers", "mmpose")  # crop coordinate conventions (see PoseConfig.frame)
NORMS = ("default", "imagenet")  # input normalisation (see data.topdown.NORM_STATS)
SMALL_CROP = 128  # crops lower than this get a 2x stem by default (a 4x stem leaves too little resolution)


@dataclass
class PoseConfig:
    """Everything that fixes the network's shape and how its inputs and outputs are read (stored in the run
    folder and the checkpoint).

    ``frame``: where crop coordinates live. ``centers`` (ours): the box centre maps to ((W-1)/2, (H-1)/2),
    heatmap pixel centres align with crop pixel centres, regression units are ``(x + 0.5) / W - 0.5``.
    ``mmpose``: the box centre maps to (W/2, H/2), a heatmap pixel is ``x / stride``, regression units are
    ``x / W`` (how mmpose trains; imported checkpoints keep it). ``norm``: ``default`` scales pixels to
    (x/255 - 0.5) / 0.25; ``imagenet`` uses ImageNet's per-channel mean and std (pretrained backbones)."""

    head: str = "rle"
    input_hw: tuple[int, int] = (64, 48)
    heatmap_hw: tuple[int, int] = (16, 12)
    depth: int = 18
    width: int = 16
    stages: int = LEGACY_STAGES  # backbone stages used (4 = the whole ResNet)
    deconv_channels: int = 64
    decoder: str = "argmax"  # heatmap head only
    rle_base: str = "laplace"  # RLE head only
    pool: str = "flatten"  # regression and RLE heads: "flatten" or "avg" (global average pooling)
    stem_stride: int = LEGACY_STEM_STRIDE  # 4: conv stride 2 + max-pool (ResNet's); 2: no pool; 1: neither
    frame: str = "centers"
    norm: str = "default"

    def __post_init__(self) -> None:
        if self.frame not in FRAMES:
            raise ValueError(f"unknown coordinate frame {self.frame!r}; valid: {', '.join(FRAMES)}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown input normalisation {self.norm!r}; valid: {', '.join(NORMS)}")

    @classmethod
    def from_dict(cls, d: dict) -> PoseConfig:
        """From a stored dict (checkpoint meta); sizes come back from JSON as lists. Keys a checkpoint of an
        older deepnotes lacks take the values it was trained with (stem stride 4, 3 stages)."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("input_hw", "heatmap_hw"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """What a resumed checkpoint must match: :meth:`to_dict` without the keys added in issue 23 while
        they hold the values every earlier run had, so runs started before them still resume."""
        legacy = {"stem_stride": LEGACY_STEM_STRIDE, "frame": "centers", "norm": "default"}
        return {k: v for k, v in self.to_dict().items() if not (k in legacy and v == legacy[k])}


def default_backbone(input_hw: tuple[int, int], pretrained: bool = False) -> tuple[int, int]:
    """(stem stride, stages) when the user gives neither: the whole ResNet (4x stem, 4 stages) for loaded
    weights and for crops of at least ``SMALL_CROP`` px; below that a 2x stem and 4 stages, so features
    start at half the crop and end at stride 16 (a 4x stem with 3 stages ends at the same size with a
    shallower, narrower network: see docs/pose.md, "Backbone for small crops")."""
    if pretrained or min(input_hw) >= SMALL_CROP:
        return 4, 4
    return 2, 4


@dataclass
class TrainConfig:
    """How a pose model is trained (``batch_size`` is per process under torchrun)."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    seed: int = 0
    workers: int = 0  # data-loading processes; 0: in the training process
    augment: bool = True
    freeze_bn: bool = False  # BatchNorm keeps its running statistics (how DDP on CPU matches one process)
    eval_every: int = 1  # validate every N epochs (and after the last)
    # backbone weights to start from (a torchvision .pth, .safetensors or a transformers save_pretrained
    # folder, read by deepnotes.nn.pretrained.load_resnet); the model then takes ImageNet-normalised input
    pretrained: str | None = None


@dataclass(kw_only=True)
class RunConfig(TrainConfig):
    """Every setting of ``deepnotes pose train``: the :class:`TrainConfig` fields and the ones below. Each is
    a key of its ``--config`` file and, except ``deconv_channels`` (file only), a flag (underscores become
    dashes); the run folder's config.json stores it resolved."""

    train: str
    val: str
    out: str
    images: str | None = None
    val_images: str | None = None
    head: str = "rle"
    input_size: tuple[int, int] = (64, 48)
    heatmap_size: tuple[int, int] = (16, 12)
    decoder: str = "argmax"
    rle_base: str = "laplace"
    pool: str = "flatten"
    depth: int = 18
    width: int = 16
    stem_stride: int | None = None  # None: by crop size (default_backbone)
    stages: int | None = None  # None: by crop size (default_backbone)
    deconv_channels: int | None = None  # None: 4 x width
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.stem_stride is not None and self.stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4, got {self.stem_stride}")
        if self.stages is not None and not 1 <= self.stages <= 4:
            raise ValueError(f"stages must be 1..4 (3 or 4 on the command line), got {self.stages}")

    def model_config(self) -> PoseConfig:
        stem, stages = default_backbone(tuple(self.input_size), pretrained=self.pretrained is not None)
        return PoseConfig(head=self.head, input_hw=tuple(self.input_size),
                          heatmap_hw=tuple(self.heatmap_size), depth=self.depth, width=self.width,
                          stages=self.stages or stages, stem_stride=self.stem_stride or stem,
                          deconv_channels=self.deconv_channels or 4 * self.width,
                          decoder=self.decoder, rle_base=self.rle_base, pool=self.pool,
                          norm="default" if self.pretrained is None else "imagenet")

    def train_config(self) -> TrainConfig:
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(TrainConfig)})


def run_config(train_ann, val_ann, out, config: PoseConfig, tc: TrainConfig, images=None, val_images=None,
               device: str = "auto") -> dict:
    """The :class:`RunConfig` keys of a training (what config.json stores, what ``--resume`` reads back)."""
    opt = lambda p: None if p is None else str(p)  # noqa: E731
    return {"train": str(train_ann), "val": str(val_ann), "out": str(out), "images": opt(images),
            "val_images": opt(val_images), "head": config.head, "input_size": list(config.input_hw),
            "heatmap_size": list(config.heatmap_hw), "decoder": config.decoder, "rle_base": config.rle_base,
            "pool": config.pool, "depth": config.depth, "width": config.width,
            "stem_stride": config.stem_stride, "stages": config.stages,
            "deconv_channels": config.deconv_channels, **asdict(tc), "device": str(device)}
