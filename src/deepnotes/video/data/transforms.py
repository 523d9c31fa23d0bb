"""Clip transforms (no torchvision). A clip is a float tensor (T, C, H, W); every frame gets the same crop.

Each transform is ``t(clip, label, rng) -> (clip, label)`` with a numpy Generator, so a sample's
augmentation depends only on (seed, epoch, index): identical across worker counts and DDP ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from deepnotes.nn.pretrained import IMAGENET_MEAN, IMAGENET_STD

CROPS = ("multiscale", "resized", "center")  # the training crops of train_transform
# MultiScaleCrop's scales in TSN's and TSM's code: for RGB, and for the motion inputs (flow, RGB differences)
RGB_SCALES, MOTION_SCALES = (1.0, 0.875, 0.75, 0.66), (1.0, 0.875, 0.75)


def resize(clip: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize so the short side is ``size`` (int) or to exactly (h, w)."""
    h, w = clip.shape[-2:]
    if isinstance(size, int):
        scale = size / min(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if tuple(size) == (h, w):
        return clip
    return F.interpolate(clip, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def crop(clip: torch.Tensor, top: int, left: int, h: int, w: int) -> torch.Tensor:
    return clip[..., top:top + h, left:left + w]


class Compose:
    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, clip: torch.Tensor, label: int, rng: np.random.Generator):
        for t in self.transforms:
            clip, label = t(clip, label, rng)
        return clip, label


class Resize:
    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = size

    def __call__(self, clip, label, rng):
        return resize(clip, self.size), label


class CenterCrop:
    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, clip, label, rng):
        h, w = clip.shape[-2:]
        s = min(self.size, h, w)
        return crop(clip, (h - s) // 2, (w - s) // 2, s, s), label


class ThreeCrop:
    """Three ``size`` squares along the long side (start, centre, end): returns (3, T, C, size, size)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, clip, label, rng):
        h, w = clip.shape[-2:]
        s = min(self.size, h, w)
        if w >= h:
            boxes = [((h - s) // 2, x) for x in (0, (w - s) // 2, w - s)]
        else:
            boxes = [(y, (w - s) // 2) for y in (0, (h - s) // 2, h - s)]
        return torch.stack([crop(clip, y, x, s, s) for y, x in boxes]), label


class RandomResizedCrop:
    """Random area fraction and aspect ratio, then resize to ``size`` x ``size`` (Inception-style)."""

    def __init__(self, size: int, area: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> None:
        self.size, self.area, self.ratio = size, area, ratio

    def __call__(self, clip, label, rng):
        h, w = clip.shape[-2:]
        for _ in range(10):
            target = h * w * rng.uniform(*self.area)
            aspect = np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1])))
            cw, ch = round(np.sqrt(target * aspect)), round(np.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                return resize(crop(clip, y, x, ch, cw), (self.size, self.size)), label
        s = min(h, w)  # fall back to the centre square
        return resize(crop(clip, (h - s) // 2, (w - s) // 2, s, s), (self.size, self.size)), label


class MultiScaleCrop:
    """TSN's corner cropping: width and height each pick a scale of the short side (at most ``max_distort``
    steps apart), the box sits at one of 5 fixed positions (corners, centre), then resize to ``size``."""

    def __init__(self, size: int, scales: Sequence[float] = RGB_SCALES,
                 max_distort: int = 1) -> None:
        self.size, self.scales, self.max_distort = size, tuple(scales), max_distort

    def __call__(self, clip, label, rng):
        h, w = clip.shape[-2:]
        base = min(h, w)
        sizes = [int(base * s) for s in self.scales]
        pairs = [(a, b) for i, a in enumerate(sizes) for j, b in enumerate(sizes)
                 if abs(i - j) <= self.max_distort]
        ch, cw = pairs[int(rng.integers(len(pairs)))]
        dy, dx = (h - ch) // 4, (w - cw) // 4
        offsets = [(0, 0), (0, 4 * dx), (4 * dy, 0), (4 * dy, 4 * dx), (2 * dy, 2 * dx)]
        y, x = offsets[int(rng.integers(len(offsets)))]
        return resize(crop(clip, y, x, ch, cw), (self.size, self.size)), label


class HorizontalFlip:
    """Mirror the clip with probability ``p``; ``label_map`` renames the label (e.g. "moving left" ->
    "moving right"); labels not in the map keep their name. ``negate_channels`` flips the sign of channels
    that encode horizontal motion (the x component of optical flow, zero-centred)."""

    def __init__(self, p: float = 0.5, label_map: dict[int, int] | None = None,
                 negate_channels: Sequence[int] = ()) -> None:
        self.p, self.label_map, self.negate = p, dict(label_map or {}), tuple(negate_channels)

    def __call__(self, clip, label, rng):
        if rng.random() >= self.p:
            return clip, label
        clip = clip.flip(-1)
        if self.negate:
            clip = clip.clone()
            clip[:, list(self.negate)] *= -1
        return clip, self.label_map.get(label, label)


class Normalize:
    """``(clip - mean) / std`` per channel, on RGB in [0, 1] (default: ImageNet's statistics, what every
    video run has used; a run stores its own in the checkpoint's data meta)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def __call__(self, clip, label, rng):
        return (clip - self.mean) / self.std, label


def train_transform(input_size: int, crop: str = "multiscale", flip: bool = True,
                    label_map: dict[int, int] | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                    scales: Sequence[float] = MOTION_SCALES) -> Compose:
    """Training pipeline: scale so the short side is 8/7 of the input, random crop (``scales``: the
    multiscale crop's), flip, normalise."""
    crops = {"multiscale": MultiScaleCrop(input_size, scales),
             "resized": RandomResizedCrop(input_size, area=(0.25, 1.0)), "center": CenterCrop(input_size)}
    if crop not in crops:
        raise ValueError(f"unknown crop {crop!r}; valid: {', '.join(crops)}")
    steps = [Resize(round(input_size * 8 / 7)), crops[crop]]
    if flip:
        steps.append(HorizontalFlip(0.5, label_map))
    return Compose([*steps, Normalize(mean, std)])


def eval_transform(input_size: int, crops: int = 1, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Compose:
    """Test pipeline: resize short side to 8/7 of the input, then centre (``crops=1``) or three crops.
    Output (crops, T, C, H, W)."""
    if crops not in (1, 3):
        raise ValueError(f"crops must be 1 (centre) or 3 (three-crop), got {crops}")
    cropper = ThreeCrop(input_size) if crops == 3 else _Unsqueeze(CenterCrop(input_size))
    return Compose([Resize(round(input_size * 8 / 7)), cropper, Normalize(mean, std)])


class _Unsqueeze:
    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, clip, label, rng):
        clip, label = self.inner(clip, label, rng)
        return clip.unsqueeze(0), label
