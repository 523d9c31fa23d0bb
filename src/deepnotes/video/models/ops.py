"""Small operators the temporal modules share. Inputs are (N*T, C, H, W) with T given at construction."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def temporal_taps(v: torch.Tensor, taps: list[torch.Tensor]) -> torch.Tensor:
    """``out[:, t] = sum_j taps[j][:, t] * v[:, t + j - k//2]`` with zeros outside the clip.

    ``v``: (N, T, C, H, W); ``taps``: k tensors broadcastable to (N, T, C, 1, 1) (their T axis of size 1
    or T, so a tap may vary over time). A channel-wise temporal convolution written as one multiply for
    the centre tap and one in-place multiply-add per other tap on the overlapping time slices: no padded
    copy of ``v`` and no sum of k full-size products (3 passes over the features instead of ~8 for k=3).
    """
    k, t = len(taps), v.shape[1]
    p = k // 2
    out = v * taps[p]
    for j, w in enumerate(taps):
        d = j - p
        if d == 0 or abs(d) >= t:
            continue
        lo, hi = max(0, -d), t - max(0, d)  # output frames that have a neighbour at offset d
        out[:, lo:hi].addcmul_(w[:, lo:hi] if w.shape[1] > 1 else w, v[:, lo + d:hi + d])
    return out


class TemporalConv(nn.Module):
    """Channel-wise (depthwise) 1D convolution over time at every pixel, zero-padded: the same function as a
    ``Conv3d(C, C, (k, 1, 1), groups=C)``, computed by :func:`temporal_taps` (several times faster on CPU)."""

    def __init__(self, channels: int, t: int, k: int = 3, identity_init: bool = False) -> None:
        super().__init__()
        self.t, self.k = t, k
        self.weight = nn.Parameter(torch.empty(channels, k))
        if identity_init:  # start as "no temporal mixing"
            nn.init.zeros_(self.weight)
            self.weight.data[:, k // 2] = 1.0
        else:  # Conv3d's default init for fan_in = k
            nn.init.uniform_(self.weight, -(1 / k) ** 0.5, (1 / k) ** 0.5)

    def extra_flops(self, args: tuple, output: torch.Tensor) -> int:
        """What ``Conv3d((k, 1, 1), groups=C)`` counts: k multiply-adds per output value."""
        return 2 * self.k * output.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        v = x.view(nt // self.t, self.t, c, h, w)  # (N, T, C, H, W): a view, no transpose copies
        wt = self.weight.t()[:, None, None, :, None, None]  # (k, 1, 1, C, 1, 1)
        return temporal_taps(v, list(wt)).view(nt, c, h, w)


@torch.no_grad()
def init_bidirectional_shift(conv: TemporalConv) -> None:
    """Start a k=3 :class:`TemporalConv` as TSM's shift with half the channels each way: the first half read
    the next frame, the second half the previous one (an odd last channel keeps its own frame). TEA's
    released code starts the temporal conv of MTA's pass-through group so (``ShiftModule(mode='shift')``)."""
    if conv.k != 3:
        raise ValueError(f"a bidirectional shift is a k=3 temporal conv, got k={conv.k}")
    half = conv.weight.shape[0] // 2
    conv.weight.zero_()
    conv.weight[:half, 2] = 1.0  # tap 2 reads frame t+1
    conv.weight[half:2 * half, 0] = 1.0  # tap 0 reads frame t-1
    conv.weight[2 * half:, 1] = 1.0


class Pointwise(nn.Conv2d):
    """A 1x1 convolution (the parameters and state-dict layout of ``nn.Conv2d(c_in, c_out, 1)``) computed as
    one batched matrix product ``W (c_out, c_in) @ x (N, c_in, H*W)``. The attention branches of TEA, STM and
    TDN squeeze to and expand from a few channels (C/16), shapes on which oneDNN's convolution is several
    times slower than the product on CPU (``benchmarks/video_models.py`` prints both); the result is equal."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        # bmm on the broadcast weight writes (N, c_out, H*W) directly; torch.matmul would fold the batch
        # into one mm on a transposed copy of x and copy the result back
        y = torch.bmm(self.weight.view(1, self.out_channels, c).expand(n, -1, -1), x.reshape(n, c, h * w))
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.view(n, self.out_channels, h, w)


def pointwise_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """The attention branches' squeeze / expansion: a :class:`Pointwise` conv then BatchNorm."""
    return nn.Sequential(Pointwise(in_channels, out_channels), nn.BatchNorm2d(out_channels))


def dw3x3(channels: int) -> nn.Conv2d:
    """Channel-wise 3x3 spatial conv."""
    return nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)


def next_minus_now(x: torch.Tensor, t: int, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
                   ) -> torch.Tensor:
    """Feature-level motion: ``transform(x[t+1]) - x[t]``, zero at the last frame. (N*T, C, H, W) in and
    out."""
    nt, c, h, w = x.shape
    nxt = transform(x) if transform is not None else x
    a, b = x.view(nt // t, t, c, h, w), nxt.view(nt // t, t, c, h, w)
    return F.pad(b[:, 1:] - a[:, :-1], (0, 0, 0, 0, 0, 0, 0, 1)).view(nt, c, h, w)


def previous_minus_now(x: torch.Tensor, t: int,
                       transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """The backward difference ``transform(x[t-1]) - x[t]``, zero at the first frame (no reversed copies)."""
    nt, c, h, w = x.shape
    prev = transform(x) if transform is not None else x
    a, b = x.view(nt // t, t, c, h, w), prev.view(nt // t, t, c, h, w)
    return F.pad(b[:, :-1] - a[:, 1:], (0, 0, 0, 0, 0, 0, 1, 0)).view(nt, c, h, w)


def reduced(channels: int, ratio: int) -> int:
    """Bottleneck width of an attention branch, never below 2 (tiny networks have few channels)."""
    return max(channels // ratio, 2)


@torch.no_grad()
def kaiming_convs_unit_bns(module: nn.Module) -> None:
    """The init TEA's and TDN's released code give their modules: every conv (1D or 2D) Kaiming-normal with
    fan-out and ReLU gain, every BatchNorm gamma 1 and beta 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
