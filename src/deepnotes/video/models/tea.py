"""TEA (Li et al., 2020): motion excitation (ME) + multiple temporal aggregation (MTA).

ME: squeeze channels (r = 16), take feature-level differences between neighbouring frames
(``conv(x[t+1]) - x[t]``), pool them spatially and turn them into a channel attention A:
``sigmoid - 0.5`` as TEA's released code has it (``excitation="code"``, the default: a gain
``1 + A`` in (0.5, 1.5)) or ``2 sigmoid - 1`` in (-1, 1) as the paper writes it (``"paper"``: a gain in
(0, 2); every TEA run saved before the field was added on 2026-12-08); output ``x + x * A`` so
motion-sensitive channels are amplified. MTA: split channels into 4 groups; the first passes through,
the second gets a temporal (channel-wise, k=3) and a spatial (channel-wise 3x3) conv, the third and
fourth add the previous group's output first (Res2Net-style), so later groups see a longer time range.
Both sit after each block's first conv and its ReLU, as in TEA's released code (``conv1``, ``bn1``,
``relu``, then ``me`` and the groups; TEA runs saved before 2026-12-08 read the BN output before the ReLU).

The group that skips the convolutions still mixes time, as in TEA's released code (its
``Bottle2neckShift``: the one group without a 3x3 conv goes through ``ShiftModule(mode='shift')``): a
learnable channel-wise temporal conv that starts as TSM's bidirectional shift (half the group's channels
read the next frame, half the previous one). Without it (``shift_passthrough=False``, every TEA run saved
before the field was added on 2026-12-07) the network starts with no temporal mixing but ME's attention.

On a pretrained backbone (``video train --pretrained``) the modules start as TEA's released code starts
them (``MEModule`` and ``ShiftModule`` in its ``tea50_8f.py``): ME's convs Kaiming-normal (fan-out) and its
BNs gamma 1, beta 0; MTA's temporal convs as the identity (the code's ``'fixed'`` mode). That code's MTA
spatial convs are Res2Net's ImageNet 3x3 convs; our ResNet has none, so ours keep their identity init and
MTA starts as a pass-through but for the first group's shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from deepnotes.video.models.base import AfterReluConfig, Recognizer2D, insert_after_conv1, resnet
from deepnotes.video.models.ops import (
    TemporalConv,
    dw3x3,
    init_bidirectional_shift,
    kaiming_convs_unit_bns,
    next_minus_now,
    pointwise_bn,
    reduced,
)
from deepnotes.video.models.registry import MODELS

EXCITATIONS = ("code", "paper")  # ME's attention: sigmoid - 0.5 (released code) or 2 sigmoid - 1 (paper)


class MotionExcitation(nn.Module):
    def __init__(self, channels: int, t: int, ratio: int = 16, excitation: str = "code") -> None:
        super().__init__()
        if excitation not in EXCITATIONS:
            raise ValueError(f"unknown excitation {excitation!r}; valid: {', '.join(EXCITATIONS)}")
        r = reduced(channels, ratio)
        self.t, self.paper = t, excitation == "paper"
        self.squeeze = pointwise_bn(channels, r)
        self.transform = dw3x3(r)
        self.expand = pointwise_bn(r, channels)

    def init_pretrained(self, backbone: nn.Module) -> None:
        """TEA's code: every conv Kaiming-normal (fan-out, ReLU gain), every BN gamma 1 and beta 0."""
        kaiming_convs_unit_bns(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = next_minus_now(self.squeeze(x), self.t, self.transform).mean((2, 3), keepdim=True)
        a = 2 * torch.sigmoid(self.expand(m)) - 1 if self.paper else torch.sigmoid(self.expand(m)) - 0.5
        return torch.addcmul(x, x, a)  # x + x * a in one pass


@dataclass
class TEAConfig(AfterReluConfig):
    """:class:`AfterReluConfig` plus whether MTA's pass-through group starts as a learnable bidirectional
    shift (TEA's released code; the default) or passes through untouched (the paper's eq. 5; earlier runs),
    and ME's attention: ``"code"`` (sigmoid - 0.5, the released code; the default) or ``"paper"``
    (2 sigmoid - 1)."""

    shift_passthrough: bool = True
    excitation: str = "code"
    # what a stored config without a field was built with (checkpoints from before the field existed)
    STORED_DEFAULTS: ClassVar[dict] = {**AfterReluConfig.STORED_DEFAULTS, "shift_passthrough": False,
                                       "excitation": "paper"}


class MultipleTemporalAggregation(nn.Module):
    def __init__(self, channels: int, t: int, groups: int = 4, shift_passthrough: bool = True) -> None:
        super().__init__()
        self.groups = groups if channels % groups == 0 else 1
        self.split = [channels // self.groups] * self.groups
        self.shift = None
        if shift_passthrough and self.groups > 1:
            self.shift = TemporalConv(self.split[0], t)
            init_bidirectional_shift(self.shift)
        self.temporal = nn.ModuleList(TemporalConv(c, t, identity_init=True) for c in self.split[1:])
        self.spatial = nn.ModuleList(dw3x3(c) for c in self.split[1:])
        for conv in self.spatial:  # identity init: MTA starts as a pass-through and learns its mixing
            nn.init.zeros_(conv.weight)
            conv.weight.data[:, 0, 1, 1] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(x.split(self.split, dim=1))
        # X1 passes through; X2 is convolved alone; X3 and X4 first add the previous group's output (Res2Net's
        # hierarchy, paper eq. 5), so group i sees a temporal range growing with i
        out, prev = [parts[0] if self.shift is None else self.shift(parts[0])], None
        for i, p in enumerate(parts[1:]):
            prev = self.spatial[i](self.temporal[i](p if prev is None else p + prev))
            out.append(prev)
        return torch.cat(out, 1)


@MODELS.register("tea", family="2d", config=TEAConfig)
def build(cfg: TEAConfig) -> Recognizer2D:
    backbone = resnet(cfg)
    t = cfg.num_segments

    def modules(c: int) -> nn.Module:
        return nn.Sequential(MotionExcitation(c, t, excitation=cfg.excitation),
                             MultipleTemporalAggregation(c, t, shift_passthrough=cfg.shift_passthrough))

    insert_after_conv1(backbone, modules, after_relu=cfg.after_relu)
    return Recognizer2D(backbone, cfg)
