"""Pose heads: heatmap (deconvolution + Gaussian targets), direct L1 regression, and RLE.

Every head maps backbone features (N, C, h, w) to a dict of outputs and offers ``loss(out, keypoints,
weight)`` (a dict of named terms plus ``loss``) and ``decode(out)`` -> ``(coords (N, K, 2) in crop pixels,
scores (N, K))``. Coordinates for regression heads are normalised by :func:`normalise`.
"""

from __future__ import annotations

import torch


def normalise(xy: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
    """Crop pixels (..., 2) -> [-0.5, 0.5] per axis (pixel centres at integers, so the crop spans -0.5..W-0.5)."""
    size = xy.new_tensor([input_hw[1], input_hw[0]])
    return (xy + 0.5) / size - 0.5


def denormalise(u: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
    size = u.new_tensor([input_hw[1], input_hw[0]])
    return (u + 0.5) * size - 0.5


def weighted_mean(per_joint: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of (N, K) over the joints with weight 1 (0 when none is labelled, keeping the graph)."""
    return (per_joint * weight).sum() / weight.sum().clamp(min=1.0)
