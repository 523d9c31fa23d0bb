"""Top-down geometry: box -> crop affine, flips with the left/right swap, scale/rotate augmentation.

Coordinates follow OpenCV's convention (pixel centres at integers), so one 2x3 matrix maps both the image
(``cv2.warpAffine``) and the keypoints, and its inverse maps predictions back to the original image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from deepnotes.pose.skeleton import flip_permutation


def box_to_center_size(bbox: np.ndarray, aspect: float, padding: float = 1.25
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Centre (2,) and size (2,) of the crop around box [x, y, w, h], widened to ``aspect`` = w / h and
    padded."""
    x, y, w, h = bbox
    center = np.array([x + w / 2.0, y + h / 2.0])
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h]) * padding


def crop_affine(center: np.ndarray, size: np.ndarray, out_hw: tuple[int, int], rotation_deg: float = 0.0,
                flip: bool = False, frame: str = "centers") -> np.ndarray:
    """2x3 matrix mapping image points to crop points: the box of ``size`` around ``center`` fills the crop
    of ``out_hw`` = (H, W); ``rotation_deg`` turns the crop counter-clockwise; ``flip`` mirrors it.

    ``frame``: ``centers`` puts ``center`` at the crop's middle pixel centre ((W-1)/2, (H-1)/2), so the box
    spans the crop's pixels symmetrically; ``mmpose`` puts it at (W/2, H/2), half a pixel right and down,
    as mmpose's ``get_warp_matrix`` does (its checkpoints were trained on such crops)."""
    oh, ow = out_hw
    s = ow / size[0]
    a = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) * s
    if flip:
        rot = np.diag([-1.0, 1.0]) @ rot
    half = 0.0 if frame == "mmpose" else 0.5
    out_center = np.array([ow / 2.0 - half, oh / 2.0 - half])
    return np.concatenate([rot, (out_center - rot @ center)[:, None]], axis=1)


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points (..., 2) through the 2x3 matrix ``m``."""
    return points @ m[:, :2].T + m[:, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(m.astype(np.float64))


def warp(image: np.ndarray, m: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) image -> (out_h, out_w, 3) crop through the 2x3 affine ``m``; outside the image is black."""
    return cv2.warpAffine(image, m, (out_hw[1], out_hw[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)


def flip_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Reorder joints (17, ...) after a mirror: the old left wrist becomes the new right wrist."""
    return keypoints[flip_permutation()]


@dataclass
class Augment:
    """Training augmentation: random scale, rotation and horizontal flip (mmpose-like defaults)."""

    scale: float = 0.25  # crop size multiplied by a factor in [1 - scale, 1 + scale]
    rotation: float = 30.0  # degrees, clipped normal with this spread
    rotation_prob: float = 0.6
    flip_prob: float = 0.5

    def sample(self, rng: np.random.Generator) -> tuple[float, float, bool]:
        factor = float(np.clip(rng.normal(1.0, self.scale), 1 - self.scale, 1 + self.scale))
        rot = float(np.clip(rng.normal(0, self.rotation), -2 * self.rotation, 2 * self.rotation))
        rot = rot if rng.uniform() < self.rotation_prob else 0.0
        return factor, rot, bool(rng.uniform() < self.flip_prob)
