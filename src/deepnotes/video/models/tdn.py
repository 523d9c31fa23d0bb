"""TDN (Wang et al., 2021): temporal difference modules at two ranges.

Short-term (S-TDM, at the stem): RGB differences between each frame and its neighbours in the clip,
stacked (2 x 3 channels; at half resolution when the stem downsamples 4x, as in TDN's code), encoded
by a small conv and added to that frame's stem features, so the earliest layers see local motion. The
paper takes 5 extra consecutive frames around each segment; here the neighbours are the clip's own
adjacent frames (equal input to every other model; with dense sampling they are consecutive frames).
Long-term (L-TDM, after each block's first conv): bidirectional feature differences between adjacent
segments, squeezed and pooled at two scales, form an attention A in (-1, 1); output ``x + x * A``
(computed as ``2 x sigmoid(z)``, the same function).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.video.models.base import (
    ModelConfig,
    Recognizer2D,
    fold,
    insert_after_conv1,
    resnet,
    unfold,
    zero_bn,
)
from deepnotes.video.models.ops import next_minus_now, previous_minus_now, reduced


class ShortTermTDM(nn.Module):
    """(N, C, T, H, W) clip -> (N*T, width, h, w) features to add to the stem output of size (h, w)."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.encode = nn.Sequential(nn.Conv2d(2 * in_channels, width, 3, stride=2, padding=1, bias=False),
                                    zero_bn(width))

    def forward(self, clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        t, h, w = clip.shape[2:]
        if h >= 4 * size[0] and w >= 4 * size[1]:
            # as TDN's reference code does, differences are taken at half resolution (pooling commutes with
            # differencing): the encoder then runs on a quarter of the pixels and lands at the stem's size
            clip = fold(F.avg_pool2d(unfold(clip), 2), t)
        pad = torch.cat([clip[:, :, :1], clip, clip[:, :, -1:]], 2)  # replicate ends: difference 0 there
        diffs = torch.cat([pad[:, :, 1:-1] - pad[:, :, :-2], pad[:, :, 2:] - pad[:, :, 1:-1]], 1)
        f = self.encode(unfold(diffs))
        return f if f.shape[-2:] == size else F.adaptive_avg_pool2d(f, size)


class LongTermTDM(nn.Module):
    def __init__(self, channels: int, t: int, ratio: int = 8) -> None:
        super().__init__()
        r = reduced(channels, ratio)
        self.t = t
        self.squeeze = nn.Sequential(nn.Conv2d(channels, r, 1, bias=False), nn.BatchNorm2d(r))
        self.fwd = nn.Conv2d(r, r, 3, padding=1, groups=r, bias=False)
        self.bwd = nn.Conv2d(r, r, 3, padding=1, groups=r, bias=False)
        self.expand = nn.Sequential(nn.Conv2d(r, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        d = next_minus_now(s, self.t, self.fwd) + previous_minus_now(s, self.t, self.bwd)
        # two scales: full resolution and 2x pooled, averaged before the attention
        d = 0.5 * (d + F.interpolate(F.avg_pool2d(d, 2, ceil_mode=True), size=d.shape[-2:], mode="nearest"))
        # x + x * A with A = 2 sigmoid(z) - 1 in (-1, 1) is 2 x sigmoid(z): two passes over x, not four
        return x.mul(torch.sigmoid(self.expand(d))).mul_(2)


def build(cfg: ModelConfig) -> Recognizer2D:
    backbone = resnet(cfg)
    insert_after_conv1(backbone, lambda c: LongTermTDM(c, cfg.num_segments))
    return Recognizer2D(backbone, cfg, stem_fusion=ShortTermTDM(cfg.in_channels, cfg.width))
