"""The 17 COCO keypoints: names, left/right flip pairs, limbs to draw, and OKS sigmas."""

from __future__ import annotations

import numpy as np

JOINTS: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_JOINTS = len(JOINTS)

# pairs swapped by a horizontal flip: a mirrored left wrist is a right wrist
FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16),
)

# COCO's skeleton (0-based joint indices), used to draw figures and predictions
LIMBS: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)

# per-joint OKS falloff, the values COCO's evaluation uses (pycocotools' defaults)
COCO_SIGMAS = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10.0


def flip_permutation() -> np.ndarray:
    """Index array ``perm`` with ``flipped[j] = original[perm[j]]`` for a horizontal flip."""
    perm = np.arange(NUM_JOINTS)
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


def coco_category() -> dict:
    """The COCO 'person' category entry with keypoint names and skeleton (1-based, as COCO stores it)."""
    return {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(JOINTS),
            "skeleton": [[a + 1, b + 1] for a, b in LIMBS]}
