"""Top-down pose model = shared ResNet backbone + one head, built from a plain config dict."""

from __future__ import annotations

import torch
from torch import nn

from deepnotes.nn.resnet import ResNet
from deepnotes.pose.config import PoseConfig
from deepnotes.pose.heads import HEADS
from deepnotes.pose.heads.common import joint_swap
from deepnotes.pose.skeleton import NUM_JOINTS

__all__ = ["HEADS", "NUM_JOINTS", "PoseConfig", "PoseModel"]


class PoseModel(nn.Module):
    """Images (N, 3, H, W) -> the head's outputs (see each head); ``decode`` -> (coords (N, K, 2),
    scores (N, K)); ``predict`` does both, optionally with the flip test."""

    def __init__(self, config: PoseConfig) -> None:
        super().__init__()
        HEADS.entry(config.head)  # an unknown head fails before the backbone is built
        self.config = config
        self.backbone = ResNet(config.depth, config.width, 3, stem_stride=config.stem_stride,
                               num_stages=config.stages)
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

    def predict(self, images: torch.Tensor, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops (N, 3, H, W) -> (coords (N, K, 2) crop pixels, scores (N, K)).

        ``flip``: also run the mirrored crops and average, as mmpose's flip test: a head with ``flip_back``
        (heatmap: the maps; regression and RLE: coordinates, and RLE's sigmas) averages its raw outputs
        before decoding; any other head averages decoded joints (x -> W - 1 - x, left and right swapped)."""
        out = self(images)
        if not flip:
            return self.decode(out)
        mirrored = self(images.flip(-1))
        flip_back = getattr(self.head, "flip_back", None)
        if flip_back is not None:
            back = flip_back(mirrored)
            return self.decode({k: (out[k] + back[k]) / 2 for k in out})
        (xy, s), (xy_m, s_m) = self.decode(out), self.decode(mirrored)
        xy_m = torch.stack([images.shape[-1] - 1 - xy_m[..., 0], xy_m[..., 1]], dim=-1)
        return (xy + joint_swap(xy_m)) / 2, (s + joint_swap(s_m)) / 2
