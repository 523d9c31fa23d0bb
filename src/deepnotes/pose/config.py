"""Pose configs: the network's shape (:class:`PoseConfig`), the optimisation (:class:`TrainConfig`) and what
``deepnotes pose train`` takes as flags or ``--config FILE.yaml`` keys (:class:`RunConfig`, both in one)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class PoseConfig:
    """Everything that fixes the network's shape (stored in the run folder and the checkpoint)."""

    head: str = "rle"
    input_hw: tuple[int, int] = (64, 48)
    heatmap_hw: tuple[int, int] = (16, 12)
    depth: int = 18
    width: int = 16
    stages: int = 3  # stride 16 features: 4x3 for a 64x48 crop
    deconv_channels: int = 64
    decoder: str = "argmax"  # heatmap head only
    rle_base: str = "laplace"  # RLE head only
    pool: str = "flatten"  # regression and RLE heads: "flatten" or "avg" (global average pooling)

    @classmethod
    def from_dict(cls, d: dict) -> PoseConfig:
        """From a stored dict (checkpoint meta); sizes come back from JSON as lists."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("input_hw", "heatmap_hw"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)


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


@dataclass(kw_only=True)
class RunConfig(TrainConfig):
    """Every setting of ``deepnotes pose train``: the :class:`TrainConfig` fields and the ones below. Each is
    a key of its ``--config`` file and, except ``stages`` and ``deconv_channels`` (file only), a flag
    (underscores become dashes); the run folder's config.json stores it resolved."""

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
    stages: int = 3
    deconv_channels: int | None = None  # None: 4 x width
    device: str = "auto"

    def model_config(self) -> PoseConfig:
        return PoseConfig(head=self.head, input_hw=tuple(self.input_size),
                          heatmap_hw=tuple(self.heatmap_size), depth=self.depth, width=self.width,
                          stages=self.stages, deconv_channels=self.deconv_channels or 4 * self.width,
                          decoder=self.decoder, rle_base=self.rle_base, pool=self.pool)

    def train_config(self) -> TrainConfig:
        return TrainConfig(**{f.name: getattr(self, f.name) for f in fields(TrainConfig)})


def run_config(train_ann, val_ann, out, config: PoseConfig, tc: TrainConfig, images=None, val_images=None,
               device: str = "auto") -> dict:
    """The :class:`RunConfig` keys of a training (what config.json stores, what ``--resume`` reads back)."""
    opt = lambda p: None if p is None else str(p)  # noqa: E731
    return {"train": str(train_ann), "val": str(val_ann), "out": str(out), "images": opt(images),
            "val_images": opt(val_images), "head": config.head, "input_size": list(config.input_hw),
            "heatmap_size": list(config.heatmap_hw), "decoder": config.decoder, "rle_base": config.rle_base,
            "pool": config.pool, "depth": config.depth, "width": config.width, "stages": config.stages,
            "deconv_channels": config.deconv_channels, **asdict(tc), "device": str(device)}
