"""A built-in dataset where the class needs both appearance and motion: ``appearance_motion``.

Four classes = {red, blue} object x {moving left, moving right}. A single RGB frame shows the colour but
not the direction (start positions are uniform, so the set of positions is the same both ways, and an
order-blind RGB stream cannot tell them apart); optical flow shows the direction but not the colour (both
objects have the same shape and speed). Each stream alone is capped near 50 % top-1; their fusion is not.
Written as real .mp4 files with ``train.txt`` / ``val.txt``, ``classes.txt`` and ``flip_map.json``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deepnotes.video.data.synth import write_synthetic_set

CLASSES = ("red_left", "red_right", "blue_left", "blue_right")
FLIP_MAP = {0: 1, 1: 0, 2: 3, 3: 2}
COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220)}


def appearance_motion_video(label: int, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, size, size, 3) uint8: a coloured disc crossing a textured grey background."""
    colour = COLOURS[CLASSES[label].split("_")[0]]
    direction = -1 if CLASSES[label].endswith("left") else 1
    noise = rng.random((size // 4 + 2, size // 4 + 2)).astype(np.float32)
    bg = 90 + 70 * cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    bg = np.repeat(np.clip(bg, 0, 255)[..., None], 3, -1)
    radius = size / 8
    travel = 0.5 * size
    x0 = rng.uniform(radius + 1, size - radius - 1 - travel)  # leftmost point of the path
    y = rng.uniform(radius + 1, size - radius - 1)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        u = t / max(frames - 1, 1)
        x = x0 + travel * (u if direction > 0 else 1 - u)
        img = bg.copy()
        centre = (int(round(x * 4)), int(round(y * 4)))  # shift=2: coordinates in quarter pixels
        cv2.circle(img, centre, int(round(radius * 4)), colour, -1, cv2.LINE_AA, shift=2)
        out[t] = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    return out


def write_appearance_motion(out: str | Path, n_per_class: int = 16, val_per_class: int = 6, frames: int = 12,
                            size: int = 32, seed: int = 0) -> dict[str, Path]:
    """Write the dataset to ``out``; same arguments, same bytes. Returns the paths of its files."""
    return write_synthetic_set(out, CLASSES, FLIP_MAP, appearance_motion_video, n_per_class, val_per_class,
                               frames, size, seed)
