"""Temporal NMS, localisation mAP and frame-mAP against hand-computed cases and pycocotools."""

from __future__ import annotations

import numpy as np
import pytest

from deepnotes.video.untrimmed.evaluate import ap_from_pr, box_iou, frame_map, localization_map
from deepnotes.video.untrimmed.nms import segment_iou, temporal_nms


def test_segment_iou_by_hand():
    ious = segment_iou(np.array([0.0, 10.0]), np.array([[0, 10], [5, 15], [10, 20], [2, 4], [-5, 25]]))
    np.testing.assert_allclose(ious, [1.0, 5 / 15, 0.0, 2 / 10, 10 / 30])


def test_temporal_nms_by_hand():
    segs = np.array([[0, 10], [1, 11], [20, 30], [5, 15], [21, 29]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95])
    # 4 (0.95) suppresses 2 (tIoU 0.8); 0 suppresses 1 (tIoU 9/11); 3 vs 0 has tIoU 1/3 <= 0.5: kept
    assert temporal_nms(segs, scores, 0.5).tolist() == [4, 0, 3]
    assert temporal_nms(segs, scores, 0.3).tolist() == [4, 0]
    assert temporal_nms(segs, scores, 0.9).tolist() == [4, 0, 1, 2, 3]
    assert temporal_nms(segs, scores, 0.5, max_keep=2).tolist() == [4, 0]
    assert temporal_nms(np.zeros((0, 2)), np.zeros(0)).tolist() == []


def test_temporal_nms_equals_brute_force_definition():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.uniform(0, 50, 30)
        segs = np.stack([s, s + rng.uniform(1, 15, 30)], 1)
        scores = rng.random(30)
        keep = temporal_nms(segs, scores, 0.4)
        # definition: a segment is kept iff no kept, higher-scoring segment overlaps it by > 0.4
        expected = []
        for i in np.argsort(-scores):
            if all(segment_iou(segs[i], segs[[j]])[0] <= 0.4 for j in expected):
                expected.append(int(i))
        assert keep.tolist() == expected


def test_localization_map_hand_computed():
    gt = {"a": [(0, 10, 1), (20, 30, 1)]}
    dets = {"a": [(0, 10, 1, 0.9), (1, 11, 1, 0.8), (19, 31, 1, 0.7)]}
    # tIoU 0.5: TP, FP (duplicate of a matched segment), TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    # all-point AP = 0.5 * 1 + 0.5 * 2/3
    res = localization_map(gt, dets, thresholds=(0.5, 0.9))
    assert res["mAP"][0.5] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # tIoU 0.9: only the exact detection is a TP: AP = 0.5
    assert res["mAP"][0.9] == pytest.approx(0.5)
    assert res["average_mAP"] == pytest.approx(((0.5 + 1 / 3) + 0.5) / 2)


def test_localization_map_classes_videos_and_misses():
    gt = {"a": [(0, 10, 1)], "b": [(0, 10, 1), (40, 50, 2)]}
    dets = {
        # a wrong-class detection does not match class 1's ground truth
        "a": [(0, 10, 2, 0.99), (0, 9, 1, 0.5)],
        "b": [(30, 35, 1, 0.9), (41, 50, 2, 0.8)],
        "c": [(0, 10, 2, 0.95)],  # a video without ground truth: false positive
    }
    res = localization_map(gt, dets, thresholds=(0.5,))
    # class 1: ranks 0.9 (FP, wrong place), 0.5 (TP) -> P = 0, 1/2; R = 0, 1/2; AP = 0.5 * 0.5
    assert res["AP"][1][0.5] == pytest.approx(0.25)
    # class 2: 0.99 (FP, video a has no class-2 truth), 0.95 (FP), 0.8 (TP) -> P 1/3 at R 1: AP 1/3
    assert res["AP"][2][0.5] == pytest.approx(1 / 3)
    assert res["mAP"][0.5] == pytest.approx((0.25 + 1 / 3) / 2)
    # a class with ground truth but no detection scores 0; perfect detections score 1
    assert localization_map(gt, {}, (0.5,))["mAP"][0.5] == 0.0
    perfect = {v: [(s, e, c, 1.0) for s, e, c in segs] for v, segs in gt.items()}
    assert localization_map(gt, perfect)["average_mAP"] == pytest.approx(1.0)


def test_ap_interpolations_by_hand():
    p, r = np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])
    assert ap_from_pr(p, r, "all") == pytest.approx(0.5 + 0.5 * 2 / 3)
    # 101 points: recall 0..0.5 (51 points) at precision 1, 0.51..1 (50 points) at 2/3
    assert ap_from_pr(p, r, "coco101") == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)


def test_box_iou_by_hand():
    ious = box_iou(np.array([0, 0, 10, 10.0]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(ious, [1.0, 50 / 150, 0.0])


def test_frame_map_matches_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(3)
    gt, dets = {}, {}
    images, anns, coco_dets = [], [], []
    score_pool = iter(rng.permutation(5000) / 5000 + 1e-4)  # distinct scores: no tie-order ambiguity
    for frame in range(40):
        key = ("v", frame)
        images.append({"id": frame, "width": 64, "height": 64})
        gt[key] = []
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 40, 2)
            box = np.array([x, y, x + rng.uniform(8, 20), y + rng.uniform(8, 20)])
            label = int(rng.integers(1, 3))
            gt[key].append((label, box))
            anns.append({"id": len(anns) + 1, "image_id": frame, "category_id": label, "iscrowd": 0,
                         "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                         "area": float((box[2] - box[0]) * (box[3] - box[1]))})
        dets[key] = []
        for label, box in gt[key] + [(int(rng.integers(1, 3)), None)]:
            if box is None:  # a spurious detection
                x, y = rng.uniform(0, 40, 2)
                box = np.array([x, y, x + 12, y + 12])
            noisy = box + rng.normal(0, 3, 4)
            score = float(next(score_pool))
            label = label if rng.random() < 0.8 else 3 - label
            dets[key].append((label, noisy, score))
            coco_dets.append({"image_id": frame, "category_id": label, "score": score,
                              "bbox": [noisy[0], noisy[1], noisy[2] - noisy[0], noisy[3] - noisy[1]]})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1}, {"id": 2}]}
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(coco_dets), "bbox")
    ev.params.iouThrs = np.array([0.5])
    ev.params.maxDets = [100]
    ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
    ev.evaluate()
    ev.accumulate()
    coco_ap = {c: float(ev.eval["precision"][0, :, k, 0, 0].mean()) for k, c in enumerate((1, 2))}
    ours = frame_map({k: v for k, v in gt.items() if v}, dets, 0.5, interpolation="coco101")
    for c in (1, 2):
        assert ours["AP"][c] == pytest.approx(coco_ap[c], abs=1e-9)
    # the default (all-point) AP is a slightly different integral of the same curve
    assert abs(frame_map({k: v for k, v in gt.items() if v}, dets)["frame_mAP"] - ours["frame_mAP"]) < 0.05
