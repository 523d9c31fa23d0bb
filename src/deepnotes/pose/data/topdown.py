"""A torch Dataset of top-down person crops, and a collate that drops unreadable images, counting and
naming them."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from deepnotes.nn.pretrained import IMAGENET_MEAN, IMAGENET_STD
from deepnotes.pose.data.coco import PersonSample
from deepnotes.pose.transforms import (
    Augment,
    apply_affine,
    box_to_center_size,
    crop_affine,
    flip_keypoints,
    invert_affine,
    warp,
)

MEAN, STD = 0.5, 0.25  # images are scaled to [0, 1] then standardised with these (no pretrained statistics)
# PoseConfig.norm -> per-channel (mean, std) of RGB in [0, 1]; "imagenet" is what pretrained ResNets (and
# mmpose's PoseDataPreprocessor: mean 123.675, 116.28, 103.53, std 58.395, 57.12, 57.375 on 0..255) expect
NORM_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "default": ((MEAN,) * 3, (STD,) * 3),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}


def read_rgb(path) -> np.ndarray | None:
    """RGB uint8 (H, W, 3), or None when the file cannot be decoded."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def to_tensor(crop: np.ndarray, norm: str = "default") -> torch.Tensor:
    """(H, W, 3) RGB uint8 -> (3, H, W) float, standardised with ``NORM_STATS[norm]``."""
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in NORM_STATS[norm])
    return (torch.from_numpy(crop).permute(2, 0, 1).float() / 255.0 - mean) / std


class TopDownDataset(Dataset):
    """Crops each person's box to ``input_hw`` = (H, W).

    Item: ``image`` (3, H, W), ``keypoints`` (17, 2) in crop pixels, ``weight`` (17,) 1 for labelled joints
    inside the crop, ``inverse`` (2, 3) crop -> image affine, ``index``; ``{"unreadable": path}`` when the
    image cannot be read.
    ``augment``: an :class:`Augment` for training (seeded per item and epoch), None for evaluation.
    ``frame`` and ``norm``: the model's crop convention and input normalisation (see ``PoseConfig``).
    """

    def __init__(self, samples: list[PersonSample], input_hw: tuple[int, int], augment: Augment | None = None,
                 seed: int = 0, frame: str = "centers", norm: str = "default") -> None:
        self.samples, self.input_hw, self.augment, self.seed = samples, tuple(input_hw), augment, seed
        self.frame, self.norm = frame, norm
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        img = read_rgb(s.image_path)
        if img is None:
            return {"unreadable": str(s.image_path)}
        center, size = box_to_center_size(s.bbox, self.input_hw[1] / self.input_hw[0])
        rot, flip = 0.0, False
        if self.augment is not None:
            factor, rot, flip = self.augment.sample(np.random.default_rng([self.seed, self.epoch, i]))
            size = size * factor
        m = crop_affine(center, size, self.input_hw, rot, flip, self.frame)
        kp = apply_affine(m, s.keypoints[:, :2])
        vis = s.keypoints[:, 2].copy()
        if flip:
            kp, vis = flip_keypoints(kp), flip_keypoints(vis)
        h, w = self.input_hw
        inside = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
        return {
            "image": to_tensor(warp(img, m, self.input_hw), self.norm),
            "keypoints": torch.from_numpy(kp).float(),
            "weight": torch.from_numpy(((vis > 0) & inside).astype(np.float32)),
            "inverse": torch.from_numpy(invert_affine(m)).float(),
            "index": i,
        }


def collate(items: list[dict]) -> dict:
    """Stack the readable items (each tensor gains a leading batch axis); ``unreadable`` counts the ones
    dropped and ``unreadable_paths`` names them."""
    good = [it for it in items if "unreadable" not in it]
    batch = {k: torch.stack([torch.as_tensor(it[k]) for it in good]) for k in good[0]} if good else {}
    batch["unreadable_paths"] = [it["unreadable"] for it in items if "unreadable" in it]
    batch["unreadable"] = len(batch["unreadable_paths"])
    return batch
