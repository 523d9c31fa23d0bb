"""When: temporal action localisation by sliding windows, actionness and temporal NMS.

1. Slide windows of ``window`` frames with step ``stride`` over the video and score each with a trained
   recogniser whose classes include background: (num_windows, K) softmax scores.
2. Frame scores: the average of the scores of every window covering the frame, (T, K). Actionness of a
   frame is 1 - P(background).
3. Candidate segments: maximal runs of frames whose actionness exceeds each of several thresholds (a
   multi-threshold grouping, as in TAG/SSN proposals), so both tight and loose extents are proposed.
4. What: each candidate takes its ``top_classes`` best non-background classes by mean frame score; the
   detection score is that mean times the mean actionness inside.
5. Per class, temporal NMS removes near-duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deepnotes.video.untrimmed.nms import temporal_nms

FrameDetection = tuple[int, int, int, float]  # start frame, end frame (exclusive), label, score
Scorer = Callable[[list[np.ndarray]], np.ndarray]  # windows (each (T, H, W, 3) uint8) -> (n, K) probabilities


@dataclass
class LocalizeConfig:
    """Sliding-window localisation settings (frames)."""

    window: int = 16
    stride: int = 4
    thresholds: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
    min_length: int = 4
    top_classes: int = 2
    nms_iou: float = 0.5
    max_per_video: int = 100


def sliding_windows(num_frames: int, window: int, stride: int) -> np.ndarray:
    """Windows [start, end) of ``window`` frames every ``stride`` frames; the last one ends at the video's
    end.

    Raises ``ValueError`` for a video shorter than one window (there is nothing to score) and for a stride
    longer than the window (the frames between windows would get no score).
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    if stride > window:
        raise ValueError(f"stride {stride} is longer than the window {window}: frames between windows would "
                         "get no score; use a stride <= the window")
    if num_frames < window:
        raise ValueError(f"video has {num_frames} frames, shorter than one window of {window}")
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] != num_frames - window:
        starts.append(num_frames - window)
    return np.array([[s, s + window] for s in starts], np.int64)


def frame_scores(window_probs: np.ndarray, windows: np.ndarray, num_frames: int) -> np.ndarray:
    """(W, K) window scores -> (T, K) frame scores: mean over the windows covering each frame.

    Every frame must be covered: an uncovered frame has no score (all zeros would read as "not background").
    """
    total = np.zeros((num_frames, window_probs.shape[1]))
    count = np.zeros(num_frames)
    for (s, e), p in zip(windows, window_probs, strict=True):
        total[s:e] += p
        count[s:e] += 1
    if (count == 0).any():
        first = int(np.flatnonzero(count == 0)[0])
        raise ValueError(f"frame {first} is in no window ({int((count == 0).sum())} frames uncovered); "
                         "the windows must cover the video (stride <= window)")
    return total / count[:, None]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D mask as [start, end)."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def localize(probs: np.ndarray, background: int = 0,
             cfg: LocalizeConfig | None = None) -> list[FrameDetection]:
    """Detections [(start, end, label, score)] (frames, end exclusive) from (T, K) frame scores."""
    cfg = cfg or LocalizeConfig()
    actionness = 1.0 - probs[:, background]
    fg = [k for k in range(probs.shape[1]) if k != background]
    candidates: dict[tuple[int, int, int], float] = {}
    for thr in cfg.thresholds:
        for s, e in _runs(actionness > thr):
            if e - s < cfg.min_length:
                continue
            mean = probs[s:e, fg].mean(0)
            act = float(actionness[s:e].mean())
            for j in np.argsort(-mean)[:cfg.top_classes]:
                key = (s, e, fg[j])
                candidates[key] = max(candidates.get(key, 0.0), float(mean[j]) * act)
    out = []
    for label in fg:
        items = [(k, v) for k, v in candidates.items() if k[2] == label]
        if not items:
            continue
        segs = np.array([[k[0], k[1]] for k, _ in items], float)
        scores = np.array([v for _, v in items])
        for i in temporal_nms(segs, scores, cfg.nms_iou):
            (s, e, _), score = items[i]
            out.append((s, e, label, score))
    out.sort(key=lambda d: -d[3])
    return out[:cfg.max_per_video]


def score_windows(frames: np.ndarray, windows: np.ndarray, scorer: Scorer,
                  batch_size: int = 16) -> np.ndarray:
    """Run ``scorer`` (list of (window, H, W, 3) uint8 arrays -> (n, K) probabilities) over all windows."""
    out = []
    for i in range(0, len(windows), batch_size):
        out.append(np.asarray(scorer([frames[s:e] for s, e in windows[i:i + batch_size]])))
    return np.concatenate(out)


def detect_segments(frames: np.ndarray, scorer: Scorer, background: int = 0,
                    cfg: LocalizeConfig | None = None) -> tuple[list[FrameDetection], np.ndarray]:
    """Sliding windows + scorer + :func:`localize` on one video; returns (detections, (T, K) frame
    scores)."""
    cfg = cfg or LocalizeConfig()
    windows = sliding_windows(len(frames), cfg.window, cfg.stride)
    probs = frame_scores(score_windows(frames, windows, scorer), windows, len(frames))
    return localize(probs, background, cfg), probs

