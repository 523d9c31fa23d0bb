"""TSM (Lin et al., 2019): shift 1/8 of the channels one frame back and 1/8 one frame forward, zero-padded.

The shift sits in the residual branch before each block's first conv ("residual shift"), so the shortcut
keeps the frame's own features. It costs no FLOPs and no parameters, only memory movement.
"""

from __future__ import annotations

import torch
from torch import nn

from deepnotes.video.models.base import ModelConfig, Recognizer2D, insert_before_conv1, resnet
from deepnotes.video.models.registry import MODELS


def temporal_shift(x: torch.Tensor, t: int, fold_div: int = 8) -> torch.Tensor:
    """(N*T, C, H, W) -> same shape; channels [0, C/8) take frame t+1, [C/8, C/4) take frame t-1.

    At least one channel moves each way, so a narrow test backbone (C < 8) still mixes time; mmaction2's
    ``C // 8`` would shift nothing there."""
    nt, c, h, w = x.shape
    x = x.view(nt // t, t, c, h, w)
    f = max(c // fold_div, 1)
    out = torch.empty_like(x)
    out[:, :-1, :f] = x[:, 1:, :f]  # future -> present
    out[:, -1, :f] = 0
    out[:, 1:, f:2 * f] = x[:, :-1, f:2 * f]  # past -> present
    out[:, 0, f:2 * f] = 0
    out[:, :, 2 * f:] = x[:, :, 2 * f:]
    return out.view(nt, c, h, w)


def naive_shift(x: torch.Tensor, t: int, fold_div: int = 8) -> torch.Tensor:
    """The same shift built from slices and ``torch.cat`` with zero padding (the benchmark's reference)."""
    nt, c, h, w = x.shape
    x = x.view(nt // t, t, c, h, w)
    f = max(c // fold_div, 1)
    pad = x.new_zeros(x.shape[0], 1, f, h, w)
    back = torch.cat([x[:, 1:, :f], pad], 1)
    fwd = torch.cat([pad, x[:, :-1, f:2 * f]], 1)
    return torch.cat([back, fwd, x[:, :, 2 * f:]], 2).view(nt, c, h, w)


class TemporalShift(nn.Module):
    def __init__(self, num_segments: int, fold_div: int = 8) -> None:
        super().__init__()
        self.t, self.fold_div = num_segments, fold_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self.t, self.fold_div)


@MODELS.register("tsm", family="2d")
def build(cfg: ModelConfig) -> Recognizer2D:
    backbone = resnet(cfg)
    insert_before_conv1(backbone, lambda c: TemporalShift(cfg.num_segments))
    return Recognizer2D(backbone, cfg)
