"""What every pose head shares: the head registry, coordinate normalisation and its mirror image (flip test),
the masked mean, pooling."""

from __future__ import annotations

import torch
from torch import nn

from deepnotes.core.registry import Registry
from deepnotes.pose.skeleton import flip_permutation

# name -> builder ``fn(in_channels, feature_hw, config: PoseConfig) -> nn.Module``; a head module registers
# itself with ``@HEADS.register("name")`` and heads/__init__ imports it
HEADS: Registry = Registry("head")


def normalise(xy: torch.Tensor, input_hw: tuple[int, int], frame: str = "centers") -> torch.Tensor:
    """Crop pixels (..., 2) -> [-0.5, 0.5] per axis (pixel centres at integers, so the crop spans
    -0.5..W-0.5). In the ``mmpose`` frame, ``x / W`` (mmpose's ``RegressionLabel``)."""
    size = xy.new_tensor([input_hw[1], input_hw[0]])
    return xy / size if frame == "mmpose" else (xy + 0.5) / size - 0.5


def denormalise(u: torch.Tensor, input_hw: tuple[int, int], frame: str = "centers") -> torch.Tensor:
    size = u.new_tensor([input_hw[1], input_hw[0]])
    return u * size if frame == "mmpose" else (u + 0.5) * size - 0.5


def joint_swap(t: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Reorder the joint axis ``dim`` after a mirror (the left wrist becomes the right one)."""
    return t.index_select(dim, torch.as_tensor(flip_permutation(), device=t.device))


def flip_normalised(u: torch.Tensor, input_hw: tuple[int, int], frame: str = "centers") -> torch.Tensor:
    """Normalised coordinates (N, K, 2) predicted on the mirrored crop -> those of the crop itself: pixel x
    becomes W - 1 - x (``torch.flip`` of the crop) and left/right joints swap. In the ``centers`` frame
    that is ``-u``; in the ``mmpose`` frame ``1 - u - 1/W``, mmpose's ``flip_coordinates`` with
    ``shift_coords``."""
    xy = denormalise(u, input_hw, frame)
    xy = torch.stack([input_hw[1] - 1 - xy[..., 0], xy[..., 1]], dim=-1)
    return joint_swap(normalise(xy, input_hw, frame))


def weighted_mean(per_joint: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of (N, K) over the joints with weight 1 (0 when none is labelled, keeping the graph)."""
    return (per_joint * weight).sum() / weight.sum().clamp(min=1.0)


class FeatureVector(nn.Module):
    """(N, C, h, w) -> (N, dim): ``avg`` = global average pooling (dim C, the RLE paper's choice with an
    ImageNet-pretrained ResNet-50), ``flatten`` = all positions (dim C*h*w, DeepPose's choice). Through
    average pooling a small from-scratch network can only infer positions from padding effects;
    ``flatten`` keeps them explicit, so it is the default here."""

    def __init__(self, channels: int, feature_hw: tuple[int, int], pool: str = "flatten") -> None:
        super().__init__()
        if pool not in ("avg", "flatten"):
            raise ValueError(f"unknown pooling {pool!r}; valid: avg, flatten")
        self.pool = pool
        self.dim = channels if pool == "avg" else channels * feature_hw[0] * feature_hw[1]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return feats.mean(dim=(2, 3)) if self.pool == "avg" else feats.flatten(1)
