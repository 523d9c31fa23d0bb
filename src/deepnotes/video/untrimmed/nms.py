"""Temporal IoU and temporal non-maximum suppression for 1-D segments [start, end)."""

from __future__ import annotations

import numpy as np


def segment_iou(segment: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """tIoU of one segment (2,) against many (N, 2): |intersection| / |union| of the intervals -> (N,)."""
    segments = np.asarray(segments, np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(segment[1], segments[:, 1]) - np.maximum(segment[0], segments[:, 0]), 0, None)
    union = (segment[1] - segment[0]) + (segments[:, 1] - segments[:, 0]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def temporal_nms(segments: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5,
                 max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS on segments (N, 2): keep the best-scoring one, drop those overlapping it by tIoU >
    ``iou_threshold``, repeat. Returns kept indices, best first (ties keep the earlier index)."""
    segments = np.asarray(segments, np.float64).reshape(-1, 2)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if max_keep is not None and len(keep) >= max_keep:
            break
        rest = order[1:]
        order = rest[segment_iou(segments[i], segments[rest]) <= iou_threshold]
    return np.asarray(keep, np.int64)
