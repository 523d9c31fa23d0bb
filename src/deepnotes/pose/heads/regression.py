"""Direct regression head: features -> one linear layer -> coordinates; L1 loss on normalised coordinates."""

from __future__ import annotations

import torch
from torch import nn

from deepnotes.pose.config import PoseConfig
from deepnotes.pose.heads.common import (
    HEADS,
    FeatureVector,
    denormalise,
    flip_normalised,
    normalise,
    weighted_mean,
)
from deepnotes.pose.skeleton import NUM_JOINTS


class RegressionHead(nn.Module):
    """Features (N, C, h, w) -> ``coords`` (N, K, 2) in normalised units ([-0.5, 0.5] spans the crop; in the
    ``mmpose`` frame [0, 1])."""

    def __init__(self, in_channels: int, feature_hw: tuple[int, int], input_hw: tuple[int, int],
                 num_joints: int = 17, pool: str = "flatten", frame: str = "centers") -> None:
        super().__init__()
        self.input_hw, self.num_joints, self.frame = tuple(input_hw), num_joints, frame
        self.features = FeatureVector(in_channels, feature_hw, pool)
        self.fc = nn.Linear(self.features.dim, num_joints * 2)

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"coords": self.fc(self.features(feats)).reshape(-1, self.num_joints, 2)}

    def loss(self, out: dict[str, torch.Tensor], keypoints: torch.Tensor, weight: torch.Tensor
             ) -> dict[str, torch.Tensor]:
        target = normalise(keypoints, self.input_hw, self.frame)
        l1 = weighted_mean((out["coords"] - target).abs().sum(-1), weight)
        return {"l1": l1, "loss": l1}

    def decode(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Plain regression has no notion of confidence: every joint scores 1."""
        coords = out["coords"]
        ones = torch.ones(coords.shape[:2], device=coords.device)
        return denormalise(coords, self.input_hw, self.frame), ones

    def flip_back(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The outputs of the mirrored crop as outputs of the crop (flip test): mirrored coordinates."""
        return {"coords": flip_normalised(out["coords"], self.input_hw, self.frame)}


@HEADS.register("regression")
def build(in_channels: int, feature_hw: tuple[int, int], config: PoseConfig) -> RegressionHead:
    """The head of a :class:`~deepnotes.pose.config.PoseConfig` on features (N, in_channels, *feature_hw)."""
    return RegressionHead(in_channels, feature_hw, config.input_hw, NUM_JOINTS, pool=config.pool,
                          frame=config.frame)
