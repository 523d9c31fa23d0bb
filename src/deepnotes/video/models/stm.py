"""STM (Jiang et al., 2019): channel-wise spatio-temporal module (CSTM) + channel-wise motion module (CMM).

CSTM: a channel-wise temporal conv (k=3) then a channel-wise 3x3 spatial conv. CMM: squeeze channels,
feature differences ``conv3x3(x[t+1]) - x[t]`` (motion encoded at feature level, no optical flow),
expand back. STM adds the two; here in residual form, ``x + CSTM(x) + CMM(x)`` (each branch ending in
BN), so the module plugs in after any block's first conv without losing the frame's own features.

On a pretrained backbone (``video train --pretrained``): STM's authors released no code, so the choice is
ours: the BN ending each branch starts with gamma 0, so STM starts as the 2D network it was loaded from
and each branch grows from there (its gamma gets a gradient at once); the other weights keep their init.
"""

from __future__ import annotations

import torch
from torch import nn

from deepnotes.video.models.base import ModelConfig, Recognizer2D, insert_after_conv1, resnet
from deepnotes.video.models.ops import TemporalConv, dw3x3, next_minus_now, pointwise_bn, reduced
from deepnotes.video.models.registry import MODELS


class STMModule(nn.Module):
    def __init__(self, channels: int, t: int, ratio: int = 8) -> None:
        super().__init__()
        r = reduced(channels, ratio)
        self.t = t
        self.cstm = nn.Sequential(TemporalConv(channels, t), dw3x3(channels), nn.BatchNorm2d(channels))
        self.squeeze = pointwise_bn(channels, r)
        self.transform = nn.Conv2d(r, r, 3, padding=1, bias=False)
        self.expand = pointwise_bn(r, channels)

    @torch.no_grad()
    def init_pretrained(self, backbone: nn.Module) -> None:
        """Both branches start as nothing (their last BN's gamma 0): the block computes what the 2D did."""
        nn.init.zeros_(self.cstm[2].weight)
        nn.init.zeros_(self.expand[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        motion = next_minus_now(self.squeeze(x), self.t, self.transform)
        return x + self.cstm(x) + self.expand(motion)


@MODELS.register("stm", family="2d")
def build(cfg: ModelConfig) -> Recognizer2D:
    backbone = resnet(cfg)
    insert_after_conv1(backbone, lambda c: STMModule(c, cfg.num_segments))
    return Recognizer2D(backbone, cfg)
