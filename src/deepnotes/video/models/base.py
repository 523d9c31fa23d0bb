"""What every video model shares: its config, the 2D recognizer (per-frame backbone + temporal modules +
a consensus over segments, average unless the config says max), the 3D recognizer, and reshaping helpers for
temporal modules.

Layout convention: a batch of clips is (N, C, T, H, W). 2D models fold time into the batch, (N*T, C, H, W),
so a temporal module sees (N*T, C, H, W) and knows T from its constructor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.nn.resnet import Bottleneck, ResNet


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model from a checkpoint's meta (``dataclasses.asdict``)."""

    name: str
    num_classes: int
    num_segments: int = 8  # frames per clip the model is built for
    depth: int = 18
    width: int = 64
    stem_stride: int = 4
    dropout: float = 0.5
    in_channels: int = 3
    input_size: int = 112  # used for FLOP counts only; the models accept any spatial size
    # the last BN of every residual branch starts at gamma 0 (each block starts as identity; what every run
    # before 2026-12-07 did) or at 1 (torchvision's default; the temporal modules inside the branches then
    # reach the output, and get gradients, from the first step)
    zero_init_residual: bool = True


@dataclass
class AfterReluConfig(ModelConfig):
    """ModelConfig of a model whose module sits after each block's first conv (TEA, TDN, TAM): there, their
    released code applies it to the conv's activations after BN and ReLU (``after_relu``, the default), not
    to the BN output before the ReLU (what every such run saved before 2026-12-08 did)."""

    after_relu: bool = True
    # what a stored config without a field was built with (checkpoints from before the field existed)
    STORED_DEFAULTS: ClassVar[dict] = {"after_relu": False}


# how a 2D recognizer combines its per-segment class scores (TSN's "segmental consensus")
CONSENSUS = ("avg", "max")


def check_consensus(mode: str) -> str:
    if mode not in CONSENSUS:
        raise ValueError(f"unknown consensus {mode!r}; valid: {', '.join(CONSENSUS)}")
    return mode


def segment_consensus(logits: torch.Tensor, mode: str = "avg") -> torch.Tensor:
    """Per-segment logits (N, T, K) -> clip logits (N, K): the mean over segments (``"avg"``, TSN's default)
    or the maximum of each class's score over segments (``"max"``). Both ignore the segments' order."""
    return logits.amax(1) if mode == "max" else logits.mean(1)


def fold(x: torch.Tensor, t: int) -> torch.Tensor:
    """(N*T, C, H, W) -> (N, C, T, H, W)."""
    nt, c, h, w = x.shape
    return x.view(nt // t, t, c, h, w).transpose(1, 2)


def unfold(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) -> (N*T, C, H, W)."""
    n, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(n * t, c, h, w)


def zero_bn(c: int, dims: int = 2) -> nn.Module:
    """BatchNorm with gamma 0: a residual branch ending in it starts as exactly nothing."""
    bn = nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm3d(c)
    nn.init.zeros_(bn.weight)
    return bn


def conv_channels(block: nn.Module) -> tuple[int, int]:
    """(in, out) channels of a residual block's ``conv1`` (a conv+BN Sequential)."""
    conv = block.conv1[0]
    return conv.in_channels, conv.out_channels


def insert_after_conv1(backbone: ResNet, make: callable, after_relu: bool = False) -> None:
    """Put ``make(channels)`` after every block's first conv + BN (inside the residual branch), or after its
    ReLU too (``after_relu``). The block's own ReLU after ``conv1`` then also follows the module: it changes
    nothing where the module keeps non-negative input non-negative (TAM, TDN's and TEA's ``x + x * A``), and
    stands for the ReLU after each convolved group in TEA's code."""
    for block in backbone.blocks():
        relu = [nn.ReLU(inplace=True)] if after_relu else []
        block.conv1 = nn.Sequential(block.conv1, *relu, _mark(make(conv_channels(block)[1])))


def insert_before_conv1(backbone: ResNet, make: callable) -> None:
    """Put ``make(channels)`` before every block's first conv (residual placement: the shortcut is
    untouched)."""
    for block in backbone.blocks():
        block.conv1 = nn.Sequential(_mark(make(conv_channels(block)[0])), block.conv1)


def _mark(module: nn.Module) -> nn.Module:
    module.is_temporal_module = True
    return module


def temporal_modules(model: nn.Module) -> list[nn.Module]:
    """The modules a 2D model added to the ResNet (inserted in blocks, plus a stem fusion), for cost
    accounting."""
    found = [m for m in model.modules() if getattr(m, "is_temporal_module", False)]
    fusion = getattr(model, "stem_fusion", None)
    return found + ([fusion] if fusion is not None else [])


class Recognizer(nn.Module):
    """What training calls on every video model besides ``forward``: its loss and its extra views."""

    def loss(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Training loss of a forward's (N, K) ``output`` against (N,) labels: cross-entropy."""
        return F.cross_entropy(output, labels)

    def view_model(self, view: str) -> nn.Module:
        """The module of one of the registry entry's ``views`` (none here; two_stream's: "rgb", "flow")."""
        raise ValueError(f"{type(self).__name__} has no view {view!r}")


class Recognizer2D(Recognizer):
    """Per-frame 2D ResNet with temporal modules in its blocks; class scores combined over frames by TSN's
    consensus, their average (or their maximum where the config has ``consensus="max"``, TSN's option).
    (N, C, T, H, W) -> (N, num_classes) logits.

    ``stem_fusion`` (TDN's short-term module) maps the clip to features added to the stem output.
    """

    def __init__(self, backbone: ResNet, cfg: ModelConfig, stem_fusion: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg, self.backbone, self.stem_fusion = cfg, backbone, stem_fusion
        # only TSN's config has the field (tsn.TSNConfig); every other 2D model averages
        self.consensus = check_consensus(getattr(cfg, "consensus", "avg"))
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(backbone.out_channels, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> per-frame features (N, T, D)."""
        n, _, t = x.shape[:3]
        if t != self.cfg.num_segments:
            raise ValueError(f"{self.cfg.name} was built for {self.cfg.num_segments} frames per clip, "
                             f"got {t}")
        f = self.backbone.stem(unfold(x))
        if self.stem_fusion is not None:
            f = f + self.stem_fusion(x, f.shape[-2:])
        for stage in self.backbone.stages:
            f = stage(f)
        return f.mean((2, 3)).view(n, t, -1)

    def segment_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, H, W) -> per-segment class scores (N, T, num_classes), before the consensus."""
        return self.fc(self.dropout(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return segment_consensus(self.segment_logits(x), self.consensus)


class Recognizer3D(Recognizer):
    """A 3D backbone, global average pooling over (T, H, W), dropout and a linear classifier."""

    def __init__(self, backbone: nn.Module, out_channels: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg, self.backbone = cfg, backbone
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(out_channels, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.backbone(x).mean((2, 3, 4))))


def resnet(cfg: ModelConfig) -> ResNet:
    """The 2D ResNet of ``cfg`` (inflated by the 3D models), its residual branches' last BN at gamma 0 or 1
    (``cfg.zero_init_residual``)."""
    net = ResNet(cfg.depth, cfg.width, cfg.in_channels, cfg.stem_stride)
    if not cfg.zero_init_residual:
        for block in net.blocks():
            last = block.conv3 if isinstance(block, Bottleneck) else block.conv2
            nn.init.ones_(last[1].weight)
    return net
