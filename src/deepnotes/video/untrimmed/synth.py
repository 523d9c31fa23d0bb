"""Built-in synthetic untrimmed videos with ground truth: where (boxes), when (segments), what (class).

A video is a panning textured background (camera motion everywhere) on which a few actors appear one after
another. Each actor stands still for a moment, performs one action, stands still again and leaves. The
actions differ only in how the actor moves, so recognising them needs motion; the idle frames around
each action make "when" a real question (an actor is visible but no action is going on).

Classes (label 0 is background, the label of every window without an action):
``run_right`` (moves right), ``run_left`` (moves left), ``jump`` (bounces up twice), ``crouch`` (squats
twice).

Ground truth per instance: ``label``, ``start``/``end`` frames (end exclusive) and the actor's box
(x1, y1, x2, y2, pixels, end exclusive) on every action frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

CLASSES = ("background", "run_right", "run_left", "jump", "crouch")
BACKGROUND = 0
FLIP_MAP = {1: 2, 2: 1}  # label -> label of the horizontally mirrored clip


@dataclass
class Instance:
    """One action: ``label`` (1..), frames [start, end), ``boxes`` (end - start, 4) x1, y1, x2, y2."""

    label: int
    start: int
    end: int
    boxes: np.ndarray


@dataclass
class UntrimmedVideo:
    """``frames`` (T, H, W, 3) uint8 RGB; ``instances`` sorted by start; ``fps`` for seconds."""

    frames: np.ndarray
    instances: list[Instance] = field(default_factory=list)
    fps: float = 10.0
    actor_boxes: np.ndarray | None = None  # (T, 4) box of the visible actor (idle or acting), NaN when none

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    def frame_labels(self) -> np.ndarray:
        """(T,) class of each frame (0 = background)."""
        out = np.zeros(self.num_frames, np.int64)
        for inst in self.instances:
            out[inst.start:inst.end] = inst.label
        return out


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth random colour texture (h, w, 3) float in [50, 170]: low-pass noise, enough detail for flow."""
    noise = rng.random((h // 4 + 2, w // 4 + 2, 3)).astype(np.float32)
    tex = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    tex += 0.35 * rng.random((h, w, 3)).astype(np.float32)  # fine grain so the pan is visible everywhere
    tex = (tex - tex.min()) / (tex.max() - tex.min() + 1e-6)
    return 50 + 120 * tex


def _actor_box(label: int, u: float, x0: float, y_foot: float, body: tuple[int, int], travel: float,
               bounce: float) -> tuple[float, float, float, float]:
    """Actor box at action progress ``u`` in [0, 1]: returns (x1, y1, x2, y2) floats (head included)."""
    bw, bh = body
    x, h, lift = x0, float(bh), 0.0
    phase = abs(np.sin(2 * np.pi * u))  # two cycles per action
    if label == 1:
        x = x0 + travel * u
    elif label == 2:
        x = x0 - travel * u
    elif label == 3:
        lift = bounce * phase
    elif label == 4:
        h = bh * (1 - 0.45 * phase)
    bottom = y_foot - lift
    return x, bottom - h - bw * 0.6, x + bw, bottom  # the head adds 0.6 body widths on top


def _draw_actor(frame: np.ndarray, box: tuple[float, float, float, float],
                colour: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = box
    bw = x2 - x1
    head = bw * 0.6
    cv2.rectangle(frame, (round(x1), round(y1 + head)), (round(x2) - 1, round(y2) - 1), colour, -1)
    cv2.circle(frame, (round((x1 + x2) / 2 - 0.5), round(y1 + head / 2)), max(1, round(head / 2)), colour, -1)


def make_untrimmed_video(rng: np.random.Generator, num_frames: int = 120, size: int = 64,
                         instances: tuple[int, int] = (2, 3), action_len: tuple[int, int] = (14, 26),
                         idle: tuple[int, int] = (3, 7), pan: float = 0.6,
                         fps: float = 10.0) -> UntrimmedVideo:
    """One synthetic untrimmed video (see module docstring). Deterministic given ``rng``'s state."""
    frames = _panning_background(rng, num_frames, size, pan)
    gaps, lens, idles = _schedule(rng, num_frames, instances, action_len, idle)
    out, t = [], 0
    visible = np.full((num_frames, 4), np.nan, np.float32)
    for gap, length, (before, after) in zip(gaps[:len(lens)], lens, idles, strict=True):
        t += int(gap)
        out.append(_perform(rng, frames, visible, t, int(before), int(length), int(after)))
        t = out[-1].end + int(after)
    return UntrimmedVideo(frames, out, fps, visible)


def _panning_background(rng: np.random.Generator, num_frames: int, size: int, pan: float) -> np.ndarray:
    """(T, size, size, 3) uint8: a large texture seen through a window moving at a random constant velocity
    (up to ``pan`` pixels per frame per axis), a sub-pixel translation per frame: camera motion everywhere."""
    margin = int(pan * num_frames) + 4
    tex = _texture(rng, size + 2 * margin, size + 2 * margin)
    v = rng.uniform(-pan, pan, 2)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        m = np.float32([[1, 0, -(margin + v[0] * t)], [0, 1, -(margin + v[1] * t)]])
        frames[t] = np.clip(cv2.warpAffine(tex, m, (size, size), flags=cv2.INTER_LINEAR), 0, 255)
    return frames


def _schedule(rng: np.random.Generator, num_frames: int, instances: tuple[int, int],
              action_len: tuple[int, int],
              idle: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n instances of (idle, action, idle) one after another with random gaps: returns the gap before each
    (at least n values), the action lengths (n,) and the idle frames before and after each action (n, 2).
    Instances that do not fit in ``num_frames`` are dropped from the end (one is always kept)."""
    n = int(rng.integers(instances[0], instances[1] + 1))
    lens = rng.integers(action_len[0], action_len[1] + 1, n)
    idles = rng.integers(idle[0], idle[1] + 1, (n, 2))
    busy = int(lens.sum() + idles.sum())
    while busy > num_frames - 2 and n > 1:  # too many for this length: drop the last one
        n -= 1
        lens, idles = lens[:n], idles[:n]
        busy = int(lens.sum() + idles.sum())
    free = num_frames - busy
    gaps = np.diff(np.concatenate([[0], np.sort(rng.integers(0, free + 1, n)), [free]]))
    return gaps, lens, idles


def _perform(rng: np.random.Generator, frames: np.ndarray, visible: np.ndarray, t: int, before: int,
             length: int, after: int) -> Instance:
    """Draw one actor into ``frames`` from frame ``t``: idle ``before`` frames, one random action of
    ``length`` frames, idle ``after`` frames; its box on every frame it is seen goes to ``visible``
    (T, 4). Returns the action's instance."""
    size = frames.shape[1]
    body = (max(4, size // 9), max(6, size // 5))  # actor body width, height
    travel, bounce = 0.55 * size, 0.2 * size
    label = int(rng.integers(1, len(CLASSES)))
    colour = tuple(int(c) for c in rng.choice([0, 255], 3)) if rng.random() < 0.5 else (
        int(rng.integers(200, 256)), int(rng.integers(0, 60)), int(rng.integers(150, 256)))
    if colour in ((0, 0, 0), (255, 255, 255)):
        colour = (255, 230, 0)
    bw = body[0]
    if label == 1:  # room to run right or left
        x0 = rng.uniform(1, size - travel - bw - 1)
    elif label == 2:
        x0 = rng.uniform(travel + 1, size - bw - 1)
    else:
        x0 = rng.uniform(1, size - bw - 1)
    y_foot = rng.uniform(body[1] + bw * 0.6 + bounce + 2, size - 1)
    start = t + before
    end = start + length
    boxes = []
    for f in range(t, end + after):
        u = float(np.clip((f - start) / max(end - start - 1, 1), 0, 1))
        box = _actor_box(label, u, x0, y_foot, body, travel, bounce)
        _draw_actor(frames[f], box, colour)
        visible[f] = [round(b) for b in box]
        if start <= f < end:
            boxes.append([round(b) for b in box])
    return Instance(label, start, end, np.asarray(boxes, np.float32))


def make_untrimmed_set(n_videos: int, seed: int = 0, **kwargs) -> list[UntrimmedVideo]:
    """``n_videos`` videos; video ``i`` depends only on (seed, i)."""
    return [make_untrimmed_video(np.random.default_rng([seed, i]), **kwargs) for i in range(n_videos)]


def window_label(video: UntrimmedVideo, start: int, length: int, positive: float = 0.75,
                 negative: float = 0.1) -> int | None:
    """Label of window [start, start+length): the class covering >= ``positive`` of it, background when no
    action covers more than ``negative`` of it, ``None`` (ambiguous, not used for training) otherwise."""
    labels = video.frame_labels()[start:start + length]
    counts = np.bincount(labels, minlength=len(CLASSES))
    cls = int(np.argmax(counts[1:])) + 1
    if counts[cls] >= positive * length:
        return cls
    if counts[1:].max() <= negative * length:
        return BACKGROUND
    return None


def window_clips(videos: list[UntrimmedVideo], window: int, stride: int) -> list[tuple[int, int, int]]:
    """Training windows ``(video index, start, label)`` from every video, ambiguous windows left out."""
    out = []
    for v, video in enumerate(videos):
        for s in range(0, video.num_frames - window + 1, stride):
            label = window_label(video, s, window)
            if label is not None:
                out.append((v, s, label))
    return out
