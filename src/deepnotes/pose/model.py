"""Top-down pose model = shared ResNet backbone + one head, built from a plain config dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from deepnotes.nn.resnet import ResNet
from deepnotes.pose.heads.heatmap import HeatmapHead
from deepnotes.pose.heads.regression import RegressionHead
from deepnotes.pose.heads.rle import RLEHead
from deepnotes.pose.skeleton import NUM_JOINTS

HEADS = ("rle", "heatmap", "regression")


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
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("input_hw", "heatmap_hw"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)


class PoseModel(nn.Module):
    """Images (N, 3, H, W) -> the head's outputs (see each head); ``decode`` -> (coords (N, K, 2), scores (N, K))."""

    def __init__(self, config: PoseConfig) -> None:
        super().__init__()
        if config.head not in HEADS:
            raise ValueError(f"unknown head {config.head!r}; valid: {', '.join(HEADS)}")
        self.config = config
        self.backbone = ResNet(config.depth, config.width, 3, stem_stride=4, num_stages=config.stages)
        with torch.no_grad():
            was = self.backbone.training
            self.backbone.eval()
            fh, fw = self.backbone(torch.zeros(1, 3, *config.input_hw)).shape[2:]
            self.backbone.train(was)
        cin = self.backbone.out_channels
        if config.head == "heatmap":
            self.head: nn.Module = HeatmapHead(cin, (fh, fw), config.input_hw, config.heatmap_hw, NUM_JOINTS,
                                               config.deconv_channels, decoder=config.decoder)
        elif config.head == "regression":
            self.head = RegressionHead(cin, (fh, fw), config.input_hw, NUM_JOINTS, pool=config.pool)
        else:
            self.head = RLEHead(cin, (fh, fw), config.input_hw, NUM_JOINTS, base=config.rle_base, pool=config.pool)
        self.feature_hw = (int(fh), int(fw))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.backbone(images))

    def loss(self, out: dict[str, torch.Tensor], keypoints: torch.Tensor, weight: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head.loss(out, keypoints, weight)

    def decode(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head.decode(out)
