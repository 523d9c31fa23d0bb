"""Deterministic synthetic action datasets written as real .mp4 files with mmaction2-style lists.

``motion``: 4 pairs of classes; the two classes of a pair are time reverses of each other (left/right,
up/down, approaching/receding, clockwise/counter-clockwise), drawn by the same generator then read
backwards, so a frame taken at a random time has exactly the same distribution in both classes. (A frame at
a known time does not: frame 0 of "left" is the last frame of "right". A per-frame network is not told the
time, which is why TSN's average over frames stays blind.) Each pair has its own colour and object shape, so
a frame tells the pair but never the class: order-blind models are capped at 50% top-1.

``scene``: 8 classes that differ in appearance only (background pattern); a distractor object moves in a
random direction in every class, so motion carries no label information.

``motion_hard`` (:mod:`deepnotes.video.data.synth_hard`): the ``motion`` pairs with a textured background,
a random polygon and a random colour in every video, so only the motion tells the class (meant for 64 px);
``motion_random``: the same at half the texture contrast with a bigger object; ``motion_textured``: the
``motion`` pairs (each pair's own shape and colour) on that random texture.

Output folder: ``videos/<class>/<class>_<split>_<i>.mp4``, ``train.txt``, ``val.txt`` (``path label``),
``classes.txt`` and ``flip_map.json`` (label -> label after a horizontal flip).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from deepnotes.core import atomic_write_text
from deepnotes.video.data.lists import write_list
from deepnotes.video.data.synth_hard import (
    HARD_CLASSES,
    HARD_FLIP,
    motion_hard_video,
    motion_random_video,
    textured_background,
)

MOTION_CLASSES = ["move_left", "move_right", "move_up", "move_down", "approach", "recede", "turn_cw",
                  "turn_ccw"]
MOTION_FLIP = {0: 1, 1: 0, 6: 7, 7: 6}  # mirrored left<->right and cw<->ccw; the rest keep their label
SCENE_CLASSES = ["hstripes", "vstripes", "checker", "dots", "rings", "grid", "blobs", "plain"]
KINDS = {"motion": (MOTION_CLASSES, MOTION_FLIP), "scene": (SCENE_CLASSES, {}),
         "motion_hard": (HARD_CLASSES, HARD_FLIP), "motion_random": (HARD_CLASSES, HARD_FLIP),
         "motion_textured": (MOTION_CLASSES, MOTION_FLIP)}
PAIR_COLORS = np.array([(0.95, 0.2, 0.1), (0.1, 0.85, 0.2), (0.15, 0.3, 1.0), (1.0, 0.95, 0.2)])
SS = 4  # supersampling factor: draw big, downsample with area averaging, for sub-pixel motion


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-contrast smooth noise, (S, S, 3) float in [0, 1]."""
    noise = rng.normal(0, 1, (max(2, size // 8),) * 2 + (3,)).astype(np.float32)
    smooth = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(rng.uniform(0.35, 0.55) + 0.03 * smooth, 0, 1)


def _draw(canvas: np.ndarray, pair: int, pos: tuple[float, float], scale: float, angle: float,
          color: tuple[float, ...]) -> None:
    """Draw the object of ``pair`` on a supersampled canvas, in place."""
    s = canvas.shape[0] / SS
    c = (int(pos[0] * SS), int(pos[1] * SS))
    r = max(1, int(scale * s * SS))
    if pair == 0:
        cv2.rectangle(canvas, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), color, -1)
    elif pair == 1:
        cv2.circle(canvas, c, r, color, -1)
    elif pair == 2:
        cv2.circle(canvas, c, r, color, max(1, r // 3))
        cv2.circle(canvas, c, max(1, r // 3), color, -1)
    else:  # a clock hand: a bar from the centre with a dot at its tip (its mirror image is a clock hand too)
        tip = (int(c[0] + r * np.cos(angle)), int(c[1] + r * np.sin(angle)))
        cv2.line(canvas, c, tip, color, max(1, r // 5))
        cv2.circle(canvas, tip, max(1, r // 4), color, -1)


def motion_video(label: int, frames: int, size: int, rng: np.random.Generator,
                 noise: float = 0.015, texture: float = 0.0) -> np.ndarray:
    """(T, S, S, 3) uint8 video of class ``label`` of :data:`MOTION_CLASSES` (``noise``: pixel noise std;
    ``texture`` > 0: on a random texture of that contrast instead of low-contrast smooth noise)."""
    pair, backwards = divmod(label, 2)
    bg = textured_background(rng, size * SS, texture) if texture else _background(rng, size * SS)
    color = tuple(float(v) for v in np.clip(PAIR_COLORS[pair] + rng.normal(0, 0.05, 3), 0, 1))
    t = np.linspace(0, 1, frames)
    travel = 0.45 * size
    pos0 = rng.uniform(0.3 * size, 0.7 * size, 2)
    if pair == 0:  # leftwards; the reverse is rightwards
        x0 = rng.uniform(0.15 * size, 0.85 * size - travel)
        path = [(x0 + travel * (1 - ti), pos0[1], 0.16, 0.0) for ti in t]
    elif pair == 1:  # upwards (y decreasing); the reverse is downwards
        y0 = rng.uniform(0.15 * size + travel, 0.85 * size)
        path = [(pos0[0], y0 - travel * ti, 0.16, 0.0) for ti in t]
    elif pair == 2:  # growing (approaching); the reverse recedes
        s0 = rng.uniform(0.12, 0.16)
        path = [(pos0[0], pos0[1], s0 * (1 + 1.2 * ti), 0.0) for ti in t]
    else:  # clockwise in image coordinates (y down); the reverse turns counter-clockwise
        a0 = rng.uniform(0, 2 * np.pi)
        path = [(size / 2, size / 2, 0.4, a0 + 1.4 * np.pi * ti) for ti in t]
    if backwards:
        path = path[::-1]
    out = []
    for x, y, sc, ang in path:
        canvas = bg.copy()
        _draw(canvas, pair, (x, y), sc, ang, color)
        out.append(cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA))
    video = np.stack(out) + rng.normal(0, noise, (frames, size, size, 3))
    return (np.clip(video, 0, 1) * 255).astype(np.uint8)


def motion_textured_video(label: int, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``motion_textured``: the ``motion`` pairs (their own shapes and colours) on a random texture of half
    ``motion_hard``'s contrast."""
    return motion_video(label, frames, size, rng, texture=0.5)


def _pattern(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(size / 6, size / 3.5)
    phase = rng.uniform(0, 2 * np.pi, 2)
    name = SCENE_CLASSES[label]
    if name == "hstripes":
        m = np.sin(2 * np.pi * yy / period + phase[0]) > 0
    elif name == "vstripes":
        m = np.sin(2 * np.pi * xx / period + phase[0]) > 0
    elif name == "checker":
        m = (np.sin(2 * np.pi * xx / period + phase[0]) > 0) ^ (
            np.sin(2 * np.pi * yy / period + phase[1]) > 0)
    elif name == "dots":
        m = (np.sin(2 * np.pi * xx / period + phase[0]) * np.sin(2 * np.pi * yy / period + phase[1])) > 0.6
    elif name == "rings":
        cx, cy = rng.uniform(0.3 * size, 0.7 * size, 2)
        m = np.sin(2 * np.pi * np.hypot(xx - cx, yy - cy) / period + phase[0]) > 0
    elif name == "grid":
        m = ((np.abs(np.sin(np.pi * xx / period + phase[0])) < 0.3)
             | (np.abs(np.sin(np.pi * yy / period + phase[1])) < 0.3))
    elif name == "blobs":
        noise = rng.normal(0, 1, (4, 4)).astype(np.float32)
        m = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC) > 0
    else:
        m = np.zeros((size, size), bool)
    a, b = rng.uniform(0.15, 0.45, 3), rng.uniform(0.55, 0.9, 3)
    return np.where(m[..., None], b, a).astype(np.float32)


def scene_video(label: int, frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(T, S, S, 3) uint8 video of class ``label`` of :data:`SCENE_CLASSES` with a class-blind moving
    object."""
    bg = cv2.resize(_pattern(label, size, rng), (size * SS, size * SS), interpolation=cv2.INTER_NEAREST)
    color = tuple(float(v) for v in rng.uniform(0, 1, 3))
    start, heading = rng.uniform(0.25 * size, 0.75 * size, 2), rng.uniform(0, 2 * np.pi)
    step = 0.3 * size / max(frames - 1, 1)
    out = []
    for i in range(frames):
        canvas = bg.copy()
        x, y = start + i * step * np.array([np.cos(heading), np.sin(heading)])
        _draw(canvas, 1, (x, y), 0.1, 0.0, color)
        out.append(cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA))
    video = np.stack(out) + rng.normal(0, 0.015, (frames, size, size, 3))
    return (np.clip(video, 0, 1) * 255).astype(np.uint8)


def write_mp4(path: str | Path, video: np.ndarray, fps: int = 8) -> None:
    """Encode (T, H, W, 3) uint8 RGB as H.264 (near-lossless, single-threaded so bytes are reproducible)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "8", "preset": "ultrafast", "threads": "1"}
        for frame in video:
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())
    tmp.replace(path)


def synth_dataset(kind: str, out: str | Path, n_per_class: int, val_per_class: int | None = None,
                  frames: int = 16, size: int = 32, seed: int = 0) -> dict[str, Path]:
    """Write a ``kind`` dataset (``motion``, ``scene`` or ``motion_hard``) to ``out``; returns the paths of
    its list files.

    Same arguments, same bytes. ``val_per_class`` defaults to max(2, n_per_class // 3).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic dataset {kind!r}; valid: {', '.join(KINDS)}")
    if n_per_class < 1 or frames < 2 or size < 16 or size % 2:
        raise ValueError("need n_per_class >= 1, frames >= 2 and an even size >= 16")
    classes, flip = KINDS[kind]
    make = {"motion": motion_video, "scene": scene_video, "motion_hard": motion_hard_video,
            "motion_random": motion_random_video, "motion_textured": motion_textured_video}[kind]
    val_per_class = max(2, n_per_class // 3) if val_per_class is None else val_per_class
    return write_synthetic_set(out, classes, flip, make, n_per_class, val_per_class, frames, size, seed)


def write_synthetic_set(out: str | Path, classes: tuple[str, ...], flip: dict[int, int], make: Callable,
                        n_train: int, n_val: int, frames: int, size: int, seed: int) -> dict[str, Path]:
    """Write ``make(label, frames, size, rng)`` clips as mp4 with train/val lists, ``classes.txt`` and
    ``flip_map.json``; each clip's rng is seeded by (seed, split, label, index), so the bytes are
    reproducible."""
    out = Path(out)
    lists = {}
    for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val))):
        rows = []
        for label, name in enumerate(classes):
            for i in range(n):
                rel = f"videos/{name}/{name}_{split}_{i:04d}.mp4"
                rng = np.random.default_rng([seed, split_id, label, i])
                write_mp4(out / rel, make(label, frames, size, rng))
                rows.append((rel, label))
        write_list(out / f"{split}.txt", rows)
        lists[split] = out / f"{split}.txt"
    atomic_write_text(out / "classes.txt", "".join(c + "\n" for c in classes))
    atomic_write_text(out / "flip_map.json", json.dumps({str(k): v for k, v in flip.items()}) + "\n")
    lists.update(classes=out / "classes.txt", flip_map=out / "flip_map.json")
    return lists
