"""Person scores and OKS non-maximum suppression for top-down results, with mmpose's conventions.

mmpose's ``CocoMetric`` (``score_mode='bbox_keypoint'``, ``nms_mode='oks_nms'``, its defaults) scores a
person found in a detector's box as ``box score x mean(joint scores above keypoint_score_thr)`` (0 when no
joint passes; the threshold is 0.2), then, image by image, keeps persons greedily in descending score and
drops every later one whose OKS with a kept person is above ``nms_thr`` (0.9). Its OKS here is
``mean_k exp(-d_k^2 / (2 sigma_k)^2 / ((area_a + area_b) / 2) / 2)`` over all joints, with COCO's sigmas
and each person's area taken as the product of its crop's box size (the box widened to the crop's aspect
ratio and padded by 1.25, mmpose's ``bbox_scales``). With ground-truth boxes mmpose's box score is 1.
"""

from __future__ import annotations

import numpy as np

from deepnotes.pose.skeleton import COCO_SIGMAS

KEYPOINT_THR = 0.2  # mmpose CocoMetric's keypoint_score_thr
NMS_THR = 0.9  # mmpose CocoMetric's nms_thr


def rescore(box_scores: np.ndarray, joint_scores: np.ndarray, keypoint_thr: float = KEYPOINT_THR
            ) -> np.ndarray:
    """Person scores (P,) from box scores (P,) and joint scores (P, K): the box score times the mean of
    the joint scores above ``keypoint_thr`` (0 when none is)."""
    above = joint_scores > keypoint_thr
    total = np.where(above, joint_scores, 0.0).sum(axis=1)
    count = above.sum(axis=1)
    mean = np.divide(total, count, out=np.zeros_like(total, dtype=np.float64), where=count > 0)
    return np.asarray(box_scores, dtype=np.float64) * mean


def oks(one: np.ndarray, others: np.ndarray, area: float, other_areas: np.ndarray,
        sigmas: np.ndarray = COCO_SIGMAS) -> np.ndarray:
    """OKS (M,) of the joints ``one`` (K, 2) against each of ``others`` (M, K, 2), the scale being the mean
    of the two persons' areas (mmpose's ``oks_iou`` without a visibility threshold)."""
    d2 = ((others - one[None]) ** 2).sum(-1)  # (M, K)
    scale = (area + np.asarray(other_areas, dtype=np.float64)) / 2 + np.spacing(1)
    e = d2 / (2 * sigmas[None]) ** 2 / scale[:, None] / 2
    return np.exp(-e).mean(axis=1)


def oks_nms(coords: np.ndarray, scores: np.ndarray, areas: np.ndarray, thr: float = NMS_THR,
            sigmas: np.ndarray = COCO_SIGMAS) -> np.ndarray:
    """Indices kept (in descending score; ties keep the earlier person first) among persons of one image:
    ``coords`` (P, K, 2), ``scores`` (P,), ``areas`` (P,). A person is dropped when its OKS with a person
    already kept exceeds ``thr``."""
    order = list(np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"))
    keep = []
    while order:
        first, rest = order[0], np.asarray(order[1:], dtype=int)
        keep.append(first)
        if not len(rest):
            break
        overlap = oks(coords[first], coords[rest], areas[first], areas[rest], sigmas)
        order = list(rest[overlap <= thr])
    return np.asarray(keep, dtype=int)


def nms_per_image(image_ids: np.ndarray, coords: np.ndarray, scores: np.ndarray, areas: np.ndarray,
                  thr: float = NMS_THR) -> np.ndarray:
    """:func:`oks_nms` within each image; the kept indices into the persons, in input order."""
    image_ids = np.asarray(image_ids)
    kept = []
    for image in np.unique(image_ids):
        idx = np.flatnonzero(image_ids == image)
        kept.append(idx[oks_nms(coords[idx], scores[idx], areas[idx], thr)])
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=int)
