"""Upsampling layers behind one interface: ``Upsample(kind, in_channels, out_channels, scale)``.

All kinds map (N, in_channels, H, W) -> (N, out_channels, scale·H, scale·W):

- ``nearest`` / ``bilinear`` / ``bicubic``: resize by interpolation (no parameters), then a ``k x k``
  convolution in_channels -> out_channels ("resize-convolution", Odena et al. 2016).
- ``transposed``: one transposed convolution with stride ``scale`` (kernel ``2·scale`` by default; padding
  and output padding chosen so the output is exactly ``scale`` times larger). When the kernel is not a
  multiple of the stride, output pixels receive unequal numbers of kernel taps: checkerboard artifacts.
- ``pixelshuffle``: a convolution to ``out_channels·scale²`` channels at the low resolution, then a
  periodic shuffle of channels into space (Shi et al. 2016). Initialised with ICNR (Aitken et al. 2017) so
  that, at init, it equals nearest-neighbour upsampling of a convolution: no checkerboard at the start.
- ``maxunpool``: put each value back where the matching max-pool found its maximum (zeros elsewhere),
  then a ``k x k`` convolution (SegNet). **Interface for the indices**: pool with :class:`MaxPool`, which
  returns ``(pooled, indices)``, and pass those indices explicitly: ``up(x, indices=indices)``. The layer
  keeps no state between calls, so one pool can feed one unpool in any network shape. Indices are flat
  positions in each (H_out·W_out) plane, torch's ``max_pool2d(..., return_indices=True)`` convention, so
  indices from ``torch.nn.MaxPool2d(return_indices=True)`` work too. ``output_size`` recovers odd sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("nearest", "bilinear", "bicubic", "transposed", "pixelshuffle", "maxunpool")


def pixel_shuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, C·r², H, W) -> (N, C, H·r, W·r): channel c·r² + i·r + j goes to offset (i, j) of its r x r cell."""
    n, c, h, w = x.shape
    if c % (scale * scale):
        raise ValueError(f"pixel_shuffle: {c} channels are not divisible by scale² = {scale * scale}")
    out_c = c // (scale * scale)
    x = x.reshape(n, out_c, scale, scale, h, w).permute(0, 1, 4, 2, 5, 3)  # (N, C, H, i, W, j)
    return x.reshape(n, out_c, h * scale, w * scale)


def pixel_unshuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The inverse of :func:`pixel_shuffle`: (N, C, H·r, W·r) -> (N, C·r², H, W)."""
    n, c, hh, ww = x.shape
    if hh % scale or ww % scale:
        raise ValueError(f"pixel_unshuffle: spatial size {hh}x{ww} is not divisible by scale {scale}")
    h, w = hh // scale, ww // scale
    x = x.reshape(n, c, h, scale, w, scale).permute(0, 1, 3, 5, 2, 4)  # (N, C, i, j, H, W)
    return x.reshape(n, c * scale * scale, h, w)


def max_unpool2d(x: torch.Tensor, indices: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
    """Scatter ``x`` (N, C, h, w) to positions ``indices`` (same shape, flat in H·W) of zeros (N, C, H, W)."""
    if indices.shape != x.shape:
        raise ValueError(f"max-unpool: indices shape {tuple(indices.shape)} differs from input "
                         f"{tuple(x.shape)}; pass the indices returned by the matching MaxPool")
    n, c = x.shape[:2]
    size = output_size[0] * output_size[1]
    flat = indices.reshape(n, c, -1)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= size):
        raise ValueError(f"max-unpool: indices range [{int(flat.min())}, {int(flat.max())}] does not fit an "
                         f"output of {output_size[0]}x{output_size[1]}; pass output_size= matching the "
                         "pooled input")
    out = x.new_zeros(n, c, size).scatter(2, flat, x.reshape(n, c, -1))
    return out.reshape(n, c, *output_size)


def _torch_default_init(w: torch.Tensor) -> None:
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # what nn.Conv2d does, so kinds start on equal footing


@torch.no_grad()
def icnr_(conv: nn.Conv2d, scale: int,
          init: Callable[[torch.Tensor], None] = _torch_default_init) -> nn.Conv2d:
    """ICNR: make the r² sub-pixel kernels of each output channel identical, in place.

    ``conv`` maps to ``C·r²`` channels. A base kernel (C, in, k, k) is drawn with ``init`` and repeated so
    that channels ``c·r² .. c·r² + r² - 1`` (the r x r cell of output channel c after pixel_shuffle) are
    equal; the shuffled output is then nearest-neighbour upsampling of ``conv_base(x)``.
    """
    out_ch, in_ch, kh, kw = conv.weight.shape
    r2 = scale * scale
    if out_ch % r2:
        raise ValueError(f"icnr_: conv has {out_ch} output channels, not divisible by scale² = {r2}")
    base = torch.empty(out_ch // r2, in_ch, kh, kw, dtype=conv.weight.dtype, device=conv.weight.device)
    init(base)
    conv.weight.copy_(base.repeat_interleave(r2, dim=0))
    if conv.bias is not None:
        bound = 1.0 / math.sqrt(in_ch * kh * kw)
        bias = torch.empty(out_ch // r2, dtype=conv.bias.dtype, device=conv.bias.device)
        bias.uniform_(-bound, bound)
        conv.bias.copy_(bias.repeat_interleave(r2))
    return conv


def transposed_padding(kernel_size: int, stride: int) -> tuple[int, int]:
    """(padding, output_padding) giving out = stride · in for ``ConvTranspose2d(kernel_size, stride)``.

    out = (in - 1)·s - 2p + k + op, so we need k - 2p + op = s with 0 <= op < s; with stride 1 that leaves
    odd kernels only (op would have to be 1).
    """
    p = max(0, math.ceil((kernel_size - stride) / 2))
    op = stride - kernel_size + 2 * p
    if op >= stride:
        raise ValueError(f"a transposed conv with kernel {kernel_size} and stride {stride} cannot give "
                         f"out = {stride} x in; use an odd kernel_size")
    return p, op


class MaxPool(nn.Module):
    """``scale x scale`` max-pooling that also returns where each maximum was (for ``Upsample("maxunpool")``).

    (N, C, H, W) -> ((N, C, H/scale, W/scale), indices of the same shape, flat in H·W).
    """

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.max_pool2d(x, self.scale, self.scale, return_indices=True)


class Upsample(nn.Module):
    """One learnable x``scale`` upsampler: (N, in_channels, H, W) -> (N, out_channels, scale·H, scale·W).

    ``kernel_size``: of the convolution (odd; default 3) for every kind except ``transposed``, whose default
    is ``2·scale`` (divisible by the stride; 3 at scale 1). ``maxunpool`` needs ``indices=`` at call time
    (see the module doc).
    """

    def __init__(self, kind: str, in_channels: int, out_channels: int, scale: int = 2,
                 kernel_size: int | None = None, bias: bool = True):
        super().__init__()
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise ValueError(f"unknown upsampler {kind!r}; valid: {', '.join(KINDS)}")
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"Upsample: scale must be a positive integer, got {scale!r}")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"Upsample: channels must be >= 1, got in={in_channels}, out={out_channels}")
        self.kind, self.scale = kind, scale
        if kind == "transposed":
            k = kernel_size or (2 * scale if scale > 1 else 3)
            pad, out_pad = transposed_padding(k, scale)
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, k, stride=scale, padding=pad,
                                           output_padding=out_pad, bias=bias)
        else:
            k = kernel_size or 3
            if k % 2 == 0:
                raise ValueError(f"Upsample({kind!r}): kernel_size must be odd to keep the size, got {k}")
            width = out_channels * scale * scale if kind == "pixelshuffle" else out_channels
            self.conv = nn.Conv2d(in_channels, width, k, padding=k // 2, bias=bias)
            if kind == "pixelshuffle":
                icnr_(self.conv, scale)
        self.kernel_size = k

    def forward(self, x: torch.Tensor, indices: torch.Tensor | None = None,
                output_size: tuple[int, int] | None = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"Upsample expects (N, C, H, W), got shape {tuple(x.shape)}")
        if (indices is not None) != (self.kind == "maxunpool"):
            raise ValueError("indices= is required by kind 'maxunpool' (from MaxPool) and only by it; "
                             f"this layer is {self.kind!r}")
        s = self.scale
        if self.kind in ("transposed",):
            return self.conv(x)
        if self.kind == "pixelshuffle":
            return pixel_shuffle(self.conv(x), s)
        if self.kind == "maxunpool":
            size = output_size or (x.shape[-2] * s, x.shape[-1] * s)
            return self.conv(max_unpool2d(x, indices, tuple(size)))
        align = None if self.kind == "nearest" else False
        return self.conv(F.interpolate(x, scale_factor=s, mode=self.kind, align_corners=align))

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, scale={self.scale}, kernel_size={self.kernel_size}"


def stride_frequency_energy(y: torch.Tensor, stride: int, border: int = 0) -> torch.Tensor:
    """Fraction of a map's energy at the stride frequency and its harmonics, excluding DC.

    ``y``: (..., H, W). The 2D DFT of ``y`` (cropped by ``border`` on each side to drop padding effects) is
    taken; bins (a·H/s, b·W/s) with (a, b) != (0, 0) hold exactly the pattern that repeats every ``s``
    pixels: the checkerboard. Returns sum |Y|² over those bins / sum |Y|² over all bins, shape (...).
    A constant map gives 0; a pure ±1 checkerboard with s = 2 gives 1.
    """
    if border:
        y = y[..., border:-border, border:-border]
    h, w = y.shape[-2:]
    h, w = h - h % stride, w - w % stride  # a whole number of periods, so the harmonics fall on bins
    y = y[..., :h, :w].detach().to("cpu", torch.float64)  # float64 FFT: MPS has no float64
    power = torch.fft.fft2(y).abs().square()
    periodic = power[..., :: h // stride, :: w // stride].sum(dim=(-2, -1)) - power[..., 0, 0]
    return periodic / power.sum(dim=(-2, -1)).clamp_min(1e-300)
