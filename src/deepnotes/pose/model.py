"""Top-down pose model = shared ResNet backbone + one head, built from a plain config dict."""

from __future__ import annotations

import torch
from torch import nn

from deepnotes.nn.resnet import ResNet
from deepnotes.pose.config import PoseConfig
from deepnotes.pose.heads import HEADS
from deepnotes.pose.skeleton import NUM_JOINTS

__all__ = ["HEADS", "NUM_JOINTS", "PoseConfig", "PoseModel"]


class PoseModel(nn.Module):
    """Images (N, 3, H, W) -> the head's outputs (see each head); ``decode`` -> (coords (N, K, 2),
    scores (N, K))."""

    def __init__(self, config: PoseConfig) -> None:
        super().__init__()
        HEADS.entry(config.head)  # an unknown head fails before the backbone is built
        self.config = config
        self.backbone = ResNet(config.depth, config.width, 3, stem_stride=4, num_stages=config.stages)
        with torch.no_grad():
            was = self.backbone.training
            self.backbone.eval()
            fh, fw = self.backbone(torch.zeros(1, 3, *config.input_hw)).shape[2:]
            self.backbone.train(was)
        self.head: nn.Module = HEADS[config.head](self.backbone.out_channels, (int(fh), int(fw)), config)
        self.feature_hw = (int(fh), int(fw))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.backbone(images))

    def loss(self, out: dict[str, torch.Tensor], keypoints: torch.Tensor, weight: torch.Tensor
             ) -> dict[str, torch.Tensor]:
        return self.head.loss(out, keypoints, weight)

    def decode(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head.decode(out)
