"""Detection metrics: temporal-localisation mAP at tIoU thresholds (ActivityNet/THUMOS protocol) and
frame-mAP of actor boxes at IoU 0.5 (the UCF101-24 / JHMDB protocol).

Both are the same computation over different overlaps. Per class: sort the detections by score; each one
is a true positive when it overlaps a not-yet-matched ground truth of the same video (or frame) by at least
the threshold, choosing the highest-overlap unmatched one; otherwise a false positive (a second detection of
an already matched ground truth is a false positive). AP is the area under the precision-recall curve with
precision made monotone ("all-point interpolation", as ActivityNet's and VOC's evaluation code do);
``interpolation="coco101"`` averages the monotone precision at 101 recall points as pycocotools does.
mAP is the mean over the classes that have ground truth.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from deepnotes.video.untrimmed.nms import segment_iou

TIOU_THRESHOLDS = (0.3, 0.5, 0.7)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) x1, y1, x2, y2 against boxes (N, 4) -> (N,); areas are (x2 - x1) * (y2 - y1)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def ap_from_pr(precision: np.ndarray, recall: np.ndarray, interpolation: str = "all") -> float:
    """Area under a precision-recall curve (points in detection order).

    ``"all"``: precision envelope integrated over every recall change (ActivityNet, VOC 2010+);
    ``"coco101"``: mean of the envelope at recall 0, 0.01, ..., 1 (0 where the recall is never reached).
    """
    precision, recall = np.asarray(precision, np.float64), np.asarray(recall, np.float64)
    if interpolation == "all":
        mprec = np.concatenate([[0.0], precision, [0.0]])
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mprec = np.maximum.accumulate(mprec[::-1])[::-1]
        idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
        return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))
    if interpolation == "coco101":
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if precision.size else precision
        points = np.linspace(0, 1, 101)
        pos = np.searchsorted(recall, points, side="left")
        return float(np.mean([envelope[p] if p < envelope.size else 0.0 for p in pos]))
    raise ValueError(f"unknown interpolation {interpolation!r}; valid: all, coco101")


def average_precision(ground_truth: dict[Hashable, np.ndarray],
                      detections: Sequence[tuple[Hashable, np.ndarray, float]],
                      overlap: Callable[[np.ndarray, np.ndarray], np.ndarray], threshold: float,
                      interpolation: str = "all") -> float:
    """AP of one class.

    Args:
        ground_truth: key (video, or (video, frame)) -> (G, D) ground-truth items (segments or boxes).
        detections: (key, item (D,), score) triples.
        overlap: ``overlap(item, items) -> (G,)`` (tIoU or box IoU).
        threshold: minimum overlap of a true positive.
    Returns NaN when the class has no ground truth.
    """
    n_gt = sum(len(g) for g in ground_truth.values())
    if n_gt == 0:
        return float("nan")
    if not detections:
        return 0.0
    order = np.argsort([-d[2] for d in detections], kind="stable")
    used = {k: np.zeros(len(g), bool) for k, g in ground_truth.items()}
    tp = np.zeros(len(detections))
    for rank, i in enumerate(order):
        key, item, _ = detections[i]
        gts = ground_truth.get(key)
        if gts is None or len(gts) == 0:
            continue
        ious = overlap(np.asarray(item, np.float64), gts)
        for j in np.argsort(-ious, kind="stable"):
            if ious[j] < threshold:
                break
            if used[key][j]:
                continue
            used[key][j] = True
            tp[rank] = 1
            break
    ctp = np.cumsum(tp)
    precision = ctp / np.arange(1, len(tp) + 1)
    recall = ctp / n_gt
    return ap_from_pr(precision, recall, interpolation)


Segment = tuple[float, float, int]  # start, end, label
Detection = tuple[float, float, int, float]  # start, end, label, score


def localization_map(ground_truth: dict[str, list[Segment]], detections: dict[str, list[Detection]],
                     thresholds: Sequence[float] = TIOU_THRESHOLDS, interpolation: str = "all") -> dict:
    """Temporal-localisation mAP.

    Args:
        ground_truth: video id -> [(start, end, label)]; detections: video id -> [(start, end, label, score)].
    Returns ``{"mAP": {t: value}, "AP": {label: {t: value}}, "average_mAP": mean over thresholds}``.
    """
    gt_by_class: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for vid, segs in ground_truth.items():
        for s, e, label in segs:
            gt_by_class[int(label)][vid].append((s, e))
    det_by_class: dict[int, list] = defaultdict(list)
    for vid, dets in detections.items():
        for s, e, label, score in dets:
            det_by_class[int(label)].append((vid, np.array([s, e], np.float64), float(score)))
    out_ap: dict[int, dict[float, float]] = {}
    for label in sorted(gt_by_class):
        gt = {v: np.asarray(x, np.float64) for v, x in gt_by_class[label].items()}
        out_ap[label] = {t: average_precision(gt, det_by_class.get(label, []), segment_iou, t, interpolation)
                         for t in thresholds}
    maps = {t: float(np.mean([ap[t] for ap in out_ap.values()])) if out_ap else float("nan")
            for t in thresholds}
    return {"mAP": maps, "AP": out_ap, "average_mAP": float(np.mean(list(maps.values())))}


FrameBox = tuple[int, np.ndarray]  # label, box (x1, y1, x2, y2)


def frame_map(ground_truth: dict[Hashable, list[FrameBox]],
              detections: dict[Hashable, list[tuple[int, np.ndarray, float]]], threshold: float = 0.5,
              interpolation: str = "all") -> dict:
    """Frame-mAP: per-frame boxes with class labels, AP per class at box IoU >= ``threshold``.

    Args:
        ground_truth: frame key (e.g. (video, frame)) -> [(label, box)] for the frames with an action.
        detections: frame key -> [(label, box, score)]; detections on frames without ground truth are false
            positives.
    Returns ``{"frame_mAP": value, "AP": {label: value}}``.
    """
    gt_by_class: dict[int, dict] = defaultdict(lambda: defaultdict(list))
    for key, items in ground_truth.items():
        for label, box in items:
            gt_by_class[int(label)][key].append(np.asarray(box, np.float64))
    det_by_class: dict[int, list] = defaultdict(list)
    for key, items in detections.items():
        for label, box, score in items:
            det_by_class[int(label)].append((key, np.asarray(box, np.float64), float(score)))
    aps = {}
    for label in sorted(gt_by_class):
        gt = {k: np.stack(v) for k, v in gt_by_class[label].items()}
        aps[label] = average_precision(gt, det_by_class.get(label, []), box_iou, threshold, interpolation)
    return {"frame_mAP": float(np.mean(list(aps.values()))) if aps else float("nan"), "AP": aps}
