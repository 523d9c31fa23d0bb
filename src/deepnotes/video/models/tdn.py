"""TDN (Wang et al., 2021): temporal difference modules at two ranges.

Short-term (S-TDM, at the stem): RGB differences between each frame and its neighbours in the clip,
stacked (2 x 3 channels; at half resolution when the stem downsamples 4x, as in TDN's code), encoded
by a small conv and added to that frame's stem features, so the earliest layers see local motion. The
paper takes 5 extra consecutive frames around each segment; here the neighbours are the clip's own
adjacent frames (equal input to every other model; with dense sampling they are consecutive frames).
Long-term (L-TDM, after each block's first conv and its ReLU; runs saved before 2026-12-08: before the
ReLU), as in TDN's released code: channels squeezed 16x,
the forward and the backward difference between adjacent segments (the neighbour through a shared
depthwise 3x3 first), each taken at three scales (the raw difference, a 3x3 conv at full resolution, a
3x3 conv at half resolution brought back up; averaged) and expanded to an attention sigmoid - 0.5 per
position and channel; the two directions' attentions are averaged and the output is ``x + x * A``,
A in (-0.5, 0.5). (That code also shifts channels as TSM does after this module; this TDN does not, so
the difference modules alone carry its temporal modelling.)

On a pretrained backbone (``video train --pretrained``), as TDN's released code (``ops/tdn_net.py``,
``ops/base_module.py``): L-TDM's convs Kaiming-normal (fan-out) and BNs gamma 1, beta 0; S-TDM's encoder
from the pretrained stem conv averaged over its RGB input channels and repeated over the difference
channels (the code's ``conv1_5`` rule), cut to our encoder's centre 3x3. Its BN keeps gamma 0: S-TDM
starts at zero where that code adds its difference stream at weight 0.5 from the first step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.video.models.base import (
    AfterReluConfig,
    Recognizer2D,
    fold,
    insert_after_conv1,
    resnet,
    unfold,
    zero_bn,
)
from deepnotes.video.models.ops import (
    kaiming_convs_unit_bns,
    next_minus_now,
    pointwise_bn,
    previous_minus_now,
    reduced,
)
from deepnotes.video.models.registry import MODELS


class ShortTermTDM(nn.Module):
    """(N, C, T, H, W) clip -> (N*T, width, h, w) features to add to the stem output of size (h, w)."""

    def __init__(self, in_channels: int, width: int, live: bool = False) -> None:
        super().__init__()
        # ``live``: the encoder's BN starts at gamma 1, so the differences reach the stem from the first step
        # (as the released code's difference stream does); otherwise gamma 0, the branch starts at zero
        bn = nn.BatchNorm2d(width) if live else zero_bn(width)
        self.encode = nn.Sequential(nn.Conv2d(2 * in_channels, width, 3, stride=2, padding=1, bias=False), bn)

    @torch.no_grad()
    def init_pretrained(self, backbone: nn.Module) -> None:
        """The encoder from the (pretrained) stem conv: averaged over input channels, repeated over the
        difference channels, its centre k x k; the zero BN keeps the branch at zero."""
        stem, enc = backbone.stem[0].weight, self.encode[0].weight  # (w, C, K, K), (w, 2C, k, k)
        if stem.shape[0] != enc.shape[0]:
            return
        k, big = enc.shape[-1], stem.shape[-1]
        lo = (big - k) // 2
        enc.copy_(stem.mean(1, keepdim=True)[..., lo:lo + k, lo:lo + k].expand_as(enc))

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
    """(N*T, C, H, W) -> same shape: ``x + x * A`` with a per-position, per-channel attention A in
    (-0.5, 0.5)."""

    def __init__(self, channels: int, t: int, ratio: int = 16) -> None:
        super().__init__()
        r = reduced(channels, ratio)
        self.t = t
        self.squeeze = pointwise_bn(channels, r)
        self.neighbour = nn.Conv2d(r, r, 3, padding=1, groups=r, bias=False)  # shared by both directions
        self.full = nn.Sequential(nn.Conv2d(r, r, 3, padding=1, bias=False), nn.BatchNorm2d(r))
        self.coarse = nn.Sequential(nn.Conv2d(r, r, 3, padding=1, bias=False), nn.BatchNorm2d(r))
        self.expand = pointwise_bn(r, channels)

    def init_pretrained(self, backbone: nn.Module) -> None:
        """TDN's code: convs Kaiming-normal (fan-out), BNs gamma 1 and beta 0."""
        kaiming_convs_unit_bns(self)

    def logits(self, d: torch.Tensor) -> torch.Tensor:
        """Difference maps (M, r, H, W) at three scales (themselves, a 3x3 conv, a 3x3 conv at half resolution
        brought back up), averaged and expanded to C channels: the attention before its sigmoid."""
        coarse = F.interpolate(self.coarse(F.avg_pool2d(d, 2, ceil_mode=True)), size=d.shape[-2:],
                               mode="nearest")
        return self.expand((d + self.full(d) + coarse) / 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        ns = self.neighbour(s)  # computed once, read by both differences
        # both directions through the shared convs as one batch: half the calls of the small squeezed convs
        # (in training their BatchNorm statistics then pool both directions, which the released code, calling
        # the same layers twice, keeps apart)
        d = torch.cat([next_minus_now(s, self.t, lambda _: ns), previous_minus_now(s, self.t, lambda _: ns)])
        g = torch.sigmoid(self.logits(d))
        n = x.shape[0]
        # A = ((fwd - 1/2) + (bwd - 1/2)) / 2, so x + x * A = (x + x * (fwd + bwd)) / 2: three passes,
        # not five
        return torch.addcmul(x, x, g[:n] + g[n:]).mul_(0.5)


@MODELS.register("tdn", family="2d", config=AfterReluConfig)
def build(cfg: AfterReluConfig) -> Recognizer2D:
    backbone = resnet(cfg)
    insert_after_conv1(backbone, lambda c: LongTermTDM(c, cfg.num_segments), after_relu=cfg.after_relu)
    live = not cfg.zero_init_residual  # the stem's difference branch starts as the residual branches do
    return Recognizer2D(backbone, cfg, stem_fusion=ShortTermTDM(cfg.in_channels, cfg.width, live))
