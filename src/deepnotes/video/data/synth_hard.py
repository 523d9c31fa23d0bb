"""``motion_hard``: the order-only set of :mod:`deepnotes.video.data.synth` made less kind.

Same 8 classes in mirrored pairs (left/right, up/down, grow/shrink, turn clockwise/counter-clockwise), but
every video draws its own textured background (oriented gratings over smooth noise, two random colours),
its own random polygon (5-8 vertices at random radii) and its own colour, so neither the object nor the
background tells the pair, let alone the class: only how the object moves does. Class 2k+1 is exactly class
2k's video (noise included) read backwards, so a frame at a random time is equally likely in both classes.
Meant for 64 px and 16 frames (``deepnotes video synth motion_hard OUT --size 64 --frames 16``).
"""

from __future__ import annotations

import cv2
import numpy as np

HARD_CLASSES = ["move_left", "move_right", "move_up", "move_down", "grow", "shrink", "turn_cw", "turn_ccw"]
HARD_FLIP = {0: 1, 1: 0, 6: 7, 7: 6}  # mirrored left<->right and cw<->ccw; the rest keep their label
SS = 4  # supersampling factor: draw big, downsample with area averaging, for sub-pixel motion


def textured_background(rng: np.random.Generator, size: int, contrast: float = 1.0) -> np.ndarray:
    """(S, S, 3) float in [0, 1]: two random colours mixed by 1-3 oriented gratings plus smooth noise
    (``contrast`` < 1 pulls the mix towards the middle)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    mix = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        theta, period = rng.uniform(0, np.pi), rng.uniform(0.08, 0.35)
        mix += np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + rng.uniform(0, 7))
    noise = rng.normal(0, 1, (max(2, size // 6),) * 2).astype(np.float32)
    mix += 1.5 * cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    mix = (mix - mix.min()) / max(float(np.ptp(mix)), 1e-6)
    if contrast != 1.0:
        mix = 0.5 + contrast * (mix - 0.5)
    a, b = rng.uniform(0.05, 0.95, 3), rng.uniform(0.05, 0.95, 3)
    return (a + (b - a) * mix[..., None]).astype(np.float32)


def random_polygon(rng: np.random.Generator) -> np.ndarray:
    """(V, 2) vertices of a star-shaped polygon around 0 with radius <= 1 (5-8 vertices)."""
    v = int(rng.integers(5, 9))
    angles = np.sort(rng.uniform(0, 2 * np.pi, v))
    radii = rng.uniform(0.45, 1.0, v)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)


def _path(pair: int, t: np.ndarray, size: int, rng: np.random.Generator,
          scale: float = 1.0) -> list[tuple[float, ...]]:
    """(x, y, radius, angle) per frame of the forward class of ``pair`` (left, up, grow, clockwise)."""
    r0 = rng.uniform(0.1, 0.14) * size * scale
    travel = rng.uniform(0.3, 0.45) * size
    x0, y0 = rng.uniform(0.3 * size, 0.7 * size, 2)
    a0 = rng.uniform(0, 2 * np.pi)
    if pair == 0:  # leftwards; the reverse is rightwards
        x0 = rng.uniform(0.2 * size + travel, 0.8 * size)
        return [(x0 - travel * ti, y0, r0, a0) for ti in t]
    if pair == 1:  # upwards (y decreasing); the reverse is downwards
        y0 = rng.uniform(0.2 * size + travel, 0.8 * size)
        return [(x0, y0 - travel * ti, r0, a0) for ti in t]
    if pair == 2:  # growing; the reverse shrinks
        grow = rng.uniform(1.8, 2.4)
        return [(x0, y0, 0.75 * r0 * grow ** ti, a0) for ti in t]
    turn = rng.uniform(0.5, 0.8) * np.pi  # clockwise in image coordinates (y down)
    return [(x0, y0, 1.3 * r0, a0 + turn * ti) for ti in t]


def _colour(rng: np.random.Generator, background: np.ndarray) -> tuple[float, ...]:
    """A random colour at least 0.35 (Euclidean, RGB 0-1) from the background's mean colour."""
    mean = background.reshape(-1, 3).mean(0)
    for _ in range(20):
        colour = rng.uniform(0, 1, 3)
        if np.linalg.norm(colour - mean) >= 0.35:
            break
    return tuple(float(c) for c in colour)


def motion_hard_video(label: int, frames: int, size: int, rng: np.random.Generator, noise: float = 0.02,
                      contrast: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """(T, S, S, 3) uint8 video of class ``label`` of :data:`HARD_CLASSES` (``noise``: pixel noise std;
    ``contrast``: the background texture's; ``scale``: the object's size relative to the default)."""
    pair, backwards = divmod(label, 2)
    bg = textured_background(rng, size, contrast)
    bg = cv2.resize(bg, (size * SS, size * SS), interpolation=cv2.INTER_LINEAR)
    colour = _colour(rng, bg)
    shape = random_polygon(rng)
    out = []
    for x, y, r, angle in _path(pair, np.linspace(0, 1, frames), size, rng, scale):
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        pts = (shape @ rot.T * r + (x, y)) * SS
        canvas = bg.copy()
        cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], colour, lineType=cv2.LINE_AA)
        out.append(cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA))
    video = np.stack(out) + rng.normal(0, noise, (frames, size, size, 3))
    video = (np.clip(video, 0, 1) * 255).astype(np.uint8)
    # the reverse class is the same video read backwards, noise included: an exact time reverse
    return np.ascontiguousarray(video[::-1]) if backwards else video


def motion_random_video(label: int, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``motion_random``: :func:`motion_hard_video` at half the texture contrast with an object 1.6x as
    big, the set a small network learns at 32 px in a quick run (the claims' ``--quick`` order data)."""
    return motion_hard_video(label, frames, size, rng, contrast=0.5, scale=1.6)
