"""Residual Log-likelihood Estimation (Li et al., ICCV 2021): regression trained as maximum likelihood.

The head predicts, per joint, a mean ``mu`` and a scale ``sigma`` (normalised crop units). The target's
density is modelled as a location-scale family around ``mu`` whose shape is learned: with the normalised
residual ``r = (mu - y) / sigma``,

    -log P(y) = sum_d log sigma_d  -  log G_phi(r)  -  log Q(r)
                (log sigma term)     (flow term)      (base term)

where ``Q`` is a fixed Laplace or Gaussian density (the "residual" base that gets most of the shape right
from the start) and ``G_phi`` is a RealNVP flow that learns what ``Q`` misses. Only the head is needed at
inference: the prediction is ``mu`` and the flow is dropped; ``1 - mean(sigma)`` is the joint's confidence.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepnotes.pose.config import PoseConfig
from deepnotes.pose.flow import RealNVP
from deepnotes.pose.heads.common import (
    HEADS,
    FeatureVector,
    denormalise,
    flip_normalised,
    joint_swap,
    normalise,
    weighted_mean,
)
from deepnotes.pose.skeleton import NUM_JOINTS


def base_nll(r: torch.Tensor, base: str) -> torch.Tensor:
    """-log Q(r) for a unit Laplace or Gaussian, summed over the last axis: (..., 2) -> (...)."""
    if base == "laplace":
        return (math.log(2.0) + r.abs()).sum(-1)
    if base == "gaussian":
        return (0.5 * math.log(2 * math.pi) + 0.5 * r**2).sum(-1)
    raise ValueError(f"unknown RLE base density {base!r}; valid: laplace, gaussian")


class RLEHead(nn.Module):
    """Features (N, C, h, w) -> ``mu`` (N, K, 2) normalised coordinates and ``sigma`` (N, K, 2) in (0, 1)."""

    def __init__(self, in_channels: int, feature_hw: tuple[int, int], input_hw: tuple[int, int],
                 num_joints: int = 17, base: str = "laplace", pool: str = "flatten", flow_layers: int = 6,
                 flow_hidden: int = 64, frame: str = "centers") -> None:
        super().__init__()
        base_nll(torch.zeros(1, 2), base)  # validates the name early
        self.input_hw, self.num_joints, self.base, self.frame = tuple(input_hw), num_joints, base, frame
        self.features = FeatureVector(in_channels, feature_hw, pool)
        self.fc_mu = nn.Linear(self.features.dim, num_joints * 2)
        self.fc_sigma = nn.Linear(self.features.dim, num_joints * 2)
        self.flow: RealNVP | None = RealNVP(flow_layers, flow_hidden)

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.features(feats)
        mu = self.fc_mu(pooled).reshape(-1, self.num_joints, 2)
        sigma = torch.sigmoid(self.fc_sigma(pooled)).reshape(-1, self.num_joints, 2)
        return {"mu": mu, "sigma": sigma}

    def loss_terms(self, mu: torch.Tensor, sigma: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three per-joint terms (N, K) for normalised targets ``y`` (N, K, 2)."""
        if self.flow is None:
            raise RuntimeError("this RLE head's flow was stripped for inference; it cannot compute the loss")
        r = (mu - y) / sigma
        n, k, _ = r.shape
        return {
            "log_sigma": torch.log(sigma).sum(-1),
            "flow": -self.flow.log_prob(r.reshape(-1, 2)).reshape(n, k),
            "base": base_nll(r, self.base),
        }

    def loss(self, out: dict[str, torch.Tensor], keypoints: torch.Tensor, weight: torch.Tensor
             ) -> dict[str, torch.Tensor]:
        terms = self.loss_terms(out["mu"], out["sigma"], normalise(keypoints, self.input_hw, self.frame))
        means = {name: weighted_mean(v, weight) for name, v in terms.items()}
        means["loss"] = means["log_sigma"] + means["flow"] + means["base"]
        return means

    def decode(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates from ``mu`` (the flow is not used); score per joint ``1 - mean(sigma)``."""
        return denormalise(out["mu"], self.input_hw, self.frame), 1.0 - out["sigma"].mean(-1)

    def flip_back(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The outputs of the mirrored crop as outputs of the crop (flip test): ``mu`` mirrored, ``sigma``
        with left and right swapped (averaging sigmas after the sigmoid, as mmpose's ``RLEHead.predict``)."""
        mu = flip_normalised(out["mu"], self.input_hw, self.frame)
        return {"mu": mu, "sigma": joint_swap(out["sigma"])}

    def strip_flow(self) -> RLEHead:
        """Drop the flow (it only shapes the training loss): what a deployed model carries."""
        self.flow = None
        return self


@HEADS.register("rle")
def build(in_channels: int, feature_hw: tuple[int, int], config: PoseConfig) -> RLEHead:
    """The head of a :class:`~deepnotes.pose.config.PoseConfig` on features (N, in_channels, *feature_hw)."""
    return RLEHead(in_channels, feature_hw, config.input_hw, NUM_JOINTS, base=config.rle_base,
                   pool=config.pool, frame=config.frame)
