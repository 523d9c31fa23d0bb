"""Single-image super-resolution on scikit-image's sample photographs, to compare upsamplers.

Low-resolution inputs are made by ``scale x scale`` box averaging of the high-resolution image (luminance
in [0, 1]). The baseline is bicubic interpolation; the learned net predicts a correction on top of it:

    SR(x) = bicubic(x) + head(Upsample(kind)(features(x)))

with the last convolution zero-initialised, so every kind starts exactly at the baseline and the comparison
isolates what each upsampler learns to add.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core.progress import progress
from deepnotes.nn.upsampling import Upsample
from deepnotes.optim import AdamW, cosine_with_warmup

# disjoint photograph sets: the nets never see the test images
TRAIN_IMAGES = ("camera", "coins", "moon", "brick", "grass", "gravel", "clock", "page",
                "immunohistochemistry")
TEST_IMAGES = ("astronaut", "coffee", "cat", "rocket")


def load_gray(name: str) -> np.ndarray:
    """A scikit-image sample image as float32 luminance in [0, 1], shape (H, W)."""
    from skimage import color, data

    if not hasattr(data, name):
        raise ValueError(f"skimage.data has no image {name!r}")
    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    img = img.astype(np.float32)
    return img / 255.0 if img.max() > 1.0 else img


def downsample(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 1, H/scale, W/scale) by box averaging (H, W multiples of scale)."""
    return F.avg_pool2d(hr, scale)


def bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)


def psnr(pred: torch.Tensor, target: torch.Tensor, shave: int) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1], ignoring ``shave`` border pixels."""
    keep = slice(shave, -shave or None)  # shave 0: the whole image (0:-0 would be empty)
    p = pred.clamp(0, 1)[..., keep, keep]
    t = target[..., keep, keep]
    mse = F.mse_loss(p, t).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


class SRNet(nn.Module):
    """(N, 1, h, w) -> (N, 1, scale·h, scale·w): bicubic plus a residual learned by ``Upsample(kind)``."""

    def __init__(self, kind: str, scale: int, width: int = 32):
        super().__init__()
        self.scale = scale
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 5, padding=2), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU()
        )
        self.up = Upsample(kind, width, width, scale)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(width, 1, 3, padding=1))
        # zero the last conv: the net starts as exactly bicubic and training can only add what helps
        nn.init.zeros_(self.head[1].weight)
        nn.init.zeros_(self.head[1].bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return bicubic(lr, self.scale) + self.head(self.up(self.features(lr)))


def random_crops(images: list[np.ndarray], count: int, size: int, seed: int) -> torch.Tensor:
    """(count, 1, size, size) crops drawn uniformly from ``images`` (seeded)."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, 1, size, size), dtype=np.float32)
    for i in range(count):
        img = images[rng.integers(len(images))]
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        out[i, 0] = img[y : y + size, x : x + size]
    return torch.from_numpy(out)


def train_sr(kind: str, scale: int, crops: torch.Tensor, steps: int, batch: int, seed: int,
             device: torch.device, lr: float = 1e-3, width: int = 32) -> SRNet:
    """Fit an :class:`SRNet` on HR ``crops`` (N, 1, S, S) with MSE (the loss PSNR measures) and AdamW."""
    torch.manual_seed(seed)
    net = SRNet(kind, scale, width).to(device)
    opt = AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    sched = cosine_with_warmup(opt, warmup_steps=max(1, steps // 20), total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    for _ in progress(range(steps), desc=f"sr {kind} x{scale}", total=steps):
        hr = crops[torch.randint(0, len(crops), (batch,), generator=g)].to(device)
        loss = F.mse_loss(net(downsample(hr, scale)), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()
