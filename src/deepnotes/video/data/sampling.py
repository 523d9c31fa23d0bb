"""Which frames make a clip: TSN segments or dense clips.

* segments (TSN): split the video into ``num_frames`` equal segments and take one frame from each, at a
  random offset in training and at the segment centre in testing; the clip spans the whole video.
* dense: ``num_frames`` consecutive frames ``frame_interval`` apart from a random start (training) or from
  ``num_views`` evenly spaced starts (testing); the clip covers a short window.

Test-time views shift the sampling points: view ``v`` of ``V`` uses offset ``(v + 0.5) / V`` of a segment
(or of the free range for dense clips), so ``V = 1`` is the centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("segments", "dense")


def segment_indices(total: int, num_segments: int, train: bool, rng: np.random.Generator | None = None,
                    view: float = 0.5, new_length: int = 1) -> np.ndarray:
    """Frame indices (num_segments * new_length,) for TSN sampling; ``view`` in (0, 1) places test points."""
    span = max(total - new_length + 1, 1)
    if train:
        # mmaction2's SampleFrames branches: a random offset per segment; with fewer start positions than
        # segments, sorted random starts while the video is longer than both; else an even spread
        rng = rng or np.random.default_rng()
        avg = span // num_segments
        if avg > 0:
            starts = np.arange(num_segments) * avg + rng.integers(0, avg, num_segments)
        elif total > max(num_segments, new_length):
            starts = np.sort(rng.integers(0, span, num_segments))
        elif total >= new_length:  # a video no longer than the clip: every frame, evenly repeated
            # (the last start can round up to one past the end, which mmaction2 wraps to frame 0: kept last)
            even = np.around(np.arange(num_segments) * span / num_segments)
            starts = np.minimum(even, span - 1).astype(np.int64)
        else:
            starts = np.zeros(num_segments, dtype=np.int64)
    else:
        tick = span / num_segments
        starts = (tick * view + tick * np.arange(num_segments)).astype(np.int64)
    idx = starts[:, None] + np.arange(new_length)[None, :]
    return np.clip(idx.reshape(-1), 0, total - 1)


def dense_indices(total: int, clip_len: int, frame_interval: int, train: bool,
                  rng: np.random.Generator | None = None, view: float = 0.5) -> np.ndarray:
    """Indices (clip_len,) of one dense clip; frames past the end repeat the last frame (order is kept)."""
    free = max(total - clip_len * frame_interval, 0)
    if train:
        start = int((rng or np.random.default_rng()).integers(0, free + 1))
    else:
        # (free + 1) start positions; view v of V takes the centre of its share, as mmaction2's test clips
        # do (int((free + 1) * (v + 0.5) / V)), so a single view is the centre rounded up, never past free.
        start = int((free + 1) * view)
    return np.clip(start + np.arange(clip_len) * frame_interval, 0, total - 1)


@dataclass(frozen=True)
class ClipSampler:
    """Sampling config shared by every modality (RGB, RGB difference, optical flow).

    ``num_frames``: segments (TSN) or clip length (dense); ``new_length``: consecutive frames taken per
    segment (1 for RGB; 5 for stacked flow or RGB differences).
    """

    mode: str = "segments"
    num_frames: int = 8
    frame_interval: int = 1
    new_length: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"sampling mode must be one of {MODES}, got {self.mode!r}")
        if self.num_frames < 1 or self.frame_interval < 1 or self.new_length < 1:
            raise ValueError("num_frames, frame_interval and new_length must be >= 1")

    def __call__(self, total: int, train: bool, rng: np.random.Generator | None = None,
                 num_views: int = 1) -> list[np.ndarray]:
        """One index array per view (one view in training)."""
        views = 1 if train else num_views
        out = []
        for v in range(views):
            pos = (v + 0.5) / views
            if self.mode == "segments":
                out.append(segment_indices(total, self.num_frames, train, rng, pos, self.new_length))
            else:
                out.append(dense_indices(total, self.num_frames, self.frame_interval, train, rng, pos))
        return out
