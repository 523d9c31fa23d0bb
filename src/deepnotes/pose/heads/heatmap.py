"""Heatmap head: deconvolutions up to a chosen resolution, Gaussian targets, argmax and soft-argmax decoding.

The head upsamples stride-``s`` features with ``n`` stride-2 transposed convolutions (SimpleBaseline), so
the heatmap must be the feature map times ``2**n``. A heatmap pixel covers ``input / heatmap`` crop pixels;
decoding by argmax can only land on pixel centres, so its error has a floor that grows with that stride
(the quarter-pixel shift toward the higher neighbour roughly halves it; soft-argmax interpolates between
pixels and removes it for clean peaks).

In the ``mmpose`` frame (imported checkpoints) a heatmap pixel is ``crop / stride`` without the half-pixel
alignment, the quarter shift skips index 1 as mmpose's ``refine_keypoints`` does, peaks are not clipped,
and the flip test shifts the mirrored maps one pixel right (mmpose's ``shift_heatmap``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.pose.config import PoseConfig
from deepnotes.pose.heads.common import HEADS, joint_swap, weighted_mean
from deepnotes.pose.skeleton import NUM_JOINTS


def crop_to_heatmap(xy: torch.Tensor, input_hw: tuple[int, int], heatmap_hw: tuple[int, int],
                    frame: str = "centers") -> torch.Tensor:
    """Crop pixel coordinates (..., 2) -> heatmap pixel coordinates (pixel centres aligned; ``mmpose``:
    ``x / stride``, its ``MSRAHeatmap`` codec)."""
    stride = xy.new_tensor([input_hw[1] / heatmap_hw[1], input_hw[0] / heatmap_hw[0]])
    return xy / stride if frame == "mmpose" else (xy + 0.5) / stride - 0.5


def heatmap_to_crop(xy: torch.Tensor, input_hw: tuple[int, int], heatmap_hw: tuple[int, int],
                    frame: str = "centers") -> torch.Tensor:
    stride = xy.new_tensor([input_hw[1] / heatmap_hw[1], input_hw[0] / heatmap_hw[0]])
    return xy * stride if frame == "mmpose" else (xy + 0.5) * stride - 0.5


def gaussian_targets(xy_hm: torch.Tensor, heatmap_hw: tuple[int, int], sigma: float) -> torch.Tensor:
    """Unnormalised Gaussians with peak 1 centred at the exact (sub-pixel) points: (N, K, 2) ->
    (N, K, H, W)."""
    h, w = heatmap_hw
    ys = torch.arange(h, dtype=xy_hm.dtype, device=xy_hm.device)
    xs = torch.arange(w, dtype=xy_hm.dtype, device=xy_hm.device)
    dx2 = (xs[None, None, None, :] - xy_hm[..., 0, None, None]) ** 2
    dy2 = (ys[None, None, :, None] - xy_hm[..., 1, None, None]) ** 2
    return torch.exp(-(dx2 + dy2) / (2 * sigma**2))


def decode_argmax(heatmaps: torch.Tensor, quarter_shift: bool = True, first: int = 1
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K, H, W) -> (coords (N, K, 2) in heatmap pixels, peak values (N, K)).

    ``quarter_shift`` moves each coordinate a quarter pixel toward its higher neighbour (Newell et al.);
    peaks at index ``first`` up to the one before the last are shifted (mmpose's ``refine_keypoints``
    starts at 2).
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, -1)
    peak, idx = flat.max(dim=-1)
    x, y = (idx % w).long(), torch.div(idx, w, rounding_mode="floor").long()
    coords = torch.stack([x, y], dim=-1).to(heatmaps.dtype)
    if quarter_shift:
        hm = F.pad(heatmaps, (1, 1, 1, 1), mode="replicate")  # only to index safely at the border
        bi = torch.arange(n, device=hm.device)[:, None].expand(n, k)
        ki = torch.arange(k, device=hm.device)[None, :].expand(n, k)
        # a peak on the border has one neighbour along that axis: no shift there (as mmpose), else the
        # padded copy would push it a quarter pixel off the map
        dx = (hm[bi, ki, y + 1, x + 2] - hm[bi, ki, y + 1, x]) * ((x >= first) & (x < w - 1))
        dy = (hm[bi, ki, y + 2, x + 1] - hm[bi, ki, y, x + 1]) * ((y >= first) & (y < h - 1))
        coords = coords + 0.25 * torch.stack([torch.sign(dx), torch.sign(dy)], dim=-1)
    return coords, peak


def decode_soft_argmax(heatmaps: torch.Tensor, radius: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected position under each heatmap, used as a density, near its peak: (N, K, H, W) -> coords, peaks.

    The weights are the non-negative heatmap values within ``radius`` pixels (Chebyshev) of the argmax. A
    softmax over the whole map would either collapse onto the argmax pixel (large temperature) or be
    dragged toward the map centre by the background (small one); restricting the expectation to the peak's
    neighbourhood keeps the sub-pixel interpolation without that bias. Use ``radius`` about 3 sigma.
    """
    n, k, h, w = heatmaps.shape
    peak_xy, peak = decode_argmax(heatmaps, quarter_shift=False)
    xs = torch.arange(w, dtype=heatmaps.dtype, device=heatmaps.device)
    ys = torch.arange(h, dtype=heatmaps.dtype, device=heatmaps.device)
    near_x = (xs[None, None, None, :] - peak_xy[..., 0, None, None]).abs() <= radius
    near_y = (ys[None, None, :, None] - peak_xy[..., 1, None, None]).abs() <= radius
    weight = heatmaps.clamp(min=0) * (near_x & near_y)
    total = weight.sum(dim=(2, 3)).clamp(min=1e-12)
    x = (weight.sum(dim=2) * xs).sum(-1) / total
    y = (weight.sum(dim=3) * ys).sum(-1) / total
    # a map with no positive value near its peak carries no information beyond the argmax
    coords = torch.where((weight.sum(dim=(2, 3)) > 0)[..., None], torch.stack([x, y], -1), peak_xy)
    return coords, peak


class HeatmapHead(nn.Module):
    """Features (N, C, fh, fw) -> heatmaps (N, K, H, W) with H = fh * 2**n, W = fw * 2**n.

    ``sigma``: target spread in heatmap pixels (default 2 at 64x48, scaled with the width, at least 1).
    ``decoder``: ``argmax`` (with the quarter-pixel shift) or ``soft_argmax``.
    """

    def __init__(self, in_channels: int, feature_hw: tuple[int, int], input_hw: tuple[int, int],
                 heatmap_hw: tuple[int, int], num_joints: int = 17, channels: int = 64,
                 sigma: float | None = None, decoder: str = "argmax", frame: str = "centers") -> None:
        super().__init__()
        ratio_h, ratio_w = heatmap_hw[0] / feature_hw[0], heatmap_hw[1] / feature_hw[1]
        n = round(math.log2(ratio_h)) if ratio_h >= 1 else -1
        if n < 0 or ratio_h != 2**n or ratio_w != 2**n:
            valid = ", ".join(f"{feature_hw[0] * 2**i},{feature_hw[1] * 2**i}" for i in range(5))
            raise ValueError(f"--heatmap-size {heatmap_hw[0]},{heatmap_hw[1]} must be the backbone's feature "
                             f"map ({feature_hw[0]}x{feature_hw[1]}) times a power of two, e.g. {valid}")
        if decoder not in ("argmax", "soft_argmax"):
            raise ValueError(f"unknown heatmap decoder {decoder!r}; valid: argmax, soft_argmax")
        layers: list[nn.Module] = []
        cin = in_channels
        for _ in range(n):
            layers += [nn.ConvTranspose2d(cin, channels, 4, 2, 1, bias=False), nn.BatchNorm2d(channels),
                       nn.ReLU(inplace=True)]
            cin = channels
        self.upsample = nn.Sequential(*layers)
        self.final = nn.Conv2d(cin, num_joints, 1)
        # SimpleBaseline's init: near-zero maps at the start (the targets are mostly zero); with PyTorch's
        # default init the head first spends many steps unlearning large random maps
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d | nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.input_hw, self.heatmap_hw = tuple(input_hw), tuple(heatmap_hw)
        self.sigma = sigma if sigma is not None else max(1.0, 2.0 * heatmap_hw[1] / 48)
        self.decoder, self.frame = decoder, frame

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"heatmaps": self.final(self.upsample(feats))}

    def loss(self, out: dict[str, torch.Tensor], keypoints: torch.Tensor, weight: torch.Tensor
             ) -> dict[str, torch.Tensor]:
        """Mean squared error to Gaussian targets, per joint, over labelled joints."""
        xy_hm = crop_to_heatmap(keypoints, self.input_hw, self.heatmap_hw, self.frame)
        target = gaussian_targets(xy_hm, self.heatmap_hw, self.sigma)
        per_joint = ((out["heatmaps"] - target) ** 2).mean(dim=(2, 3))
        mse = weighted_mean(per_joint, weight)
        return {"mse": mse, "loss": mse}

    def decode(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        hm = out["heatmaps"]
        mmpose = self.frame == "mmpose"
        if self.decoder == "argmax":
            coords, peak = decode_argmax(hm, first=2 if mmpose else 1)
        else:
            coords, peak = decode_soft_argmax(hm, radius=math.ceil(3 * self.sigma))
        if mmpose:  # mmpose's get_heatmap_maximum: a map without a positive value points at (-1, -1)
            coords = torch.where((peak > 0)[..., None], coords, torch.full_like(coords, -1.0))
            return heatmap_to_crop(coords, self.input_hw, self.heatmap_hw, self.frame), peak
        return heatmap_to_crop(coords, self.input_hw, self.heatmap_hw), peak.clamp(0.0, 1.0)

    def flip_back(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The maps of the mirrored crop as maps of the crop (flip test): mirrored along W, left and right
        swapped. With aligned pixel centres a crop pixel x <-> W - 1 - x is exactly heatmap pixel
        j <-> w - 1 - j; mmpose's frame is off by 1 - 1/stride there and shifts the maps one pixel right."""
        hm = joint_swap(out["heatmaps"].flip(-1))
        if self.frame == "mmpose":
            hm = torch.cat([hm[..., :1], hm[..., :-1]], dim=-1)
        return {"heatmaps": hm}


@HEADS.register("heatmap")
def build(in_channels: int, feature_hw: tuple[int, int], config: PoseConfig) -> HeatmapHead:
    """The head of a :class:`~deepnotes.pose.config.PoseConfig` on features (N, in_channels, *feature_hw)."""
    return HeatmapHead(in_channels, feature_hw, config.input_hw, config.heatmap_hw, NUM_JOINTS,
                       config.deconv_channels, decoder=config.decoder, frame=config.frame)
