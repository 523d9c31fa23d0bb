"""Draw predicted skeletons on images (OpenCV, BGR)."""

from __future__ import annotations

import cv2
import numpy as np

from deepnotes.pose.skeleton import LIMBS

LEFT, RIGHT, CENTRE = (0, 140, 255), (255, 120, 0), (0, 220, 0)


def _side(j: int) -> tuple[int, int, int]:
    return CENTRE if j == 0 else (LEFT if j % 2 == 1 else RIGHT)


def draw_skeleton(image: np.ndarray, coords: np.ndarray, scores: np.ndarray, threshold: float = 0.0,
                  box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """A copy of BGR ``image`` with joints (17, 2) whose score exceeds ``threshold`` and the limbs between
    them.

    Person's left side orange, right side blue; line widths scale with the image size.
    """
    out = image.copy()
    thick = max(1, round(max(out.shape[:2]) / 200))
    ok = scores > threshold
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(out, (round(x), round(y)), (round(x + w), round(y + h)), (255, 255, 255), thick)
    for a, b in LIMBS:
        if ok[a] and ok[b]:
            pa, pb = tuple(int(round(v)) for v in coords[a]), tuple(int(round(v)) for v in coords[b])
            cv2.line(out, pa, pb, _side(b), thick, cv2.LINE_AA)
    for j, p in enumerate(coords):
        if ok[j]:
            cv2.circle(out, tuple(int(round(v)) for v in p), thick + 1, _side(j), -1, cv2.LINE_AA)
    return out
