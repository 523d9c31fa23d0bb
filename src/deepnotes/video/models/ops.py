"""Small operators the temporal modules share. Inputs are (N*T, C, H, W) with T given at construction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.video.models.base import fold, unfold


class TemporalConv(nn.Module):
    """Channel-wise (depthwise) 1D convolution over time at every pixel: a Conv3d with kernel (k, 1, 1)."""

    def __init__(self, channels: int, t: int, k: int = 3, identity_init: bool = False) -> None:
        super().__init__()
        self.t = t
        self.conv = nn.Conv3d(channels, channels, (k, 1, 1), padding=(k // 2, 0, 0), groups=channels, bias=False)
        if identity_init:  # start as "no temporal mixing"
            nn.init.zeros_(self.conv.weight)
            self.conv.weight.data[:, 0, k // 2] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return unfold(self.conv(fold(x, self.t)))


def dw3x3(channels: int) -> nn.Conv2d:
    """Channel-wise 3x3 spatial conv."""
    return nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)


def next_minus_now(x: torch.Tensor, t: int, transform: nn.Module | None = None) -> torch.Tensor:
    """Feature-level motion: ``transform(x[t+1]) - x[t]``, zero at the last frame. (N*T, C, H, W) in and out."""
    nt, c, h, w = x.shape
    nxt = transform(x) if transform is not None else x
    a, b = x.view(nt // t, t, c, h, w), nxt.view(nt // t, t, c, h, w)
    return F.pad(b[:, 1:] - a[:, :-1], (0, 0, 0, 0, 0, 0, 0, 1)).view(nt, c, h, w)


def reduced(channels: int, ratio: int) -> int:
    """Bottleneck width of an attention branch, never below 2 (tiny networks have few channels)."""
    return max(channels // ratio, 2)
