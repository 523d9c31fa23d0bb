"""Synthetic untrimmed videos, sliding-window localisation, actor boxes, result JSON, rendering."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepnotes.video.untrimmed.actors import actor_net_boxes, boxes_from_flow, train_actor_net
from deepnotes.video.untrimmed.evaluate import box_iou, localization_map
from deepnotes.video.untrimmed.localize import (
    LocalizeConfig,
    detect_segments,
    frame_scores,
    localize,
    sliding_windows,
)
from deepnotes.video.untrimmed.render import render_detections
from deepnotes.video.untrimmed.results import (
    detection_entry,
    ground_truth_json,
    load_ground_truth,
    load_results,
    results_json,
)
from deepnotes.video.untrimmed.synth import CLASSES, make_untrimmed_set, window_clips, window_label


@pytest.fixture(scope="session")
def videos():
    return make_untrimmed_set(3, seed=5, num_frames=96)


def test_synthetic_ground_truth_is_consistent(videos):
    again = make_untrimmed_set(3, seed=5, num_frames=96)
    assert np.array_equal(videos[1].frames, again[1].frames)  # deterministic by seed
    for v in videos:
        assert v.frames.shape == (96, 64, 64, 3) and 2 <= len(v.instances) <= 3
        labels = v.frame_labels()
        prev_end = 0
        for inst in v.instances:
            assert prev_end <= inst.start < inst.end <= 96 and 1 <= inst.label < len(CLASSES)
            assert len(inst.boxes) == inst.end - inst.start
            prev_end = inst.end
            assert (labels[inst.start:inst.end] == inst.label).all()
            for k in (0, len(inst.boxes) // 2):
                x1, y1, x2, y2 = inst.boxes[k].astype(int)
                assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
                # the actor is a flat colour: inside its body the frame is uniform, unlike the texture
                body = v.frames[inst.start + k, (y1 + y2) // 2 + 1:y2 - 1, x1 + 1:x2 - 1].reshape(-1, 3)
                assert body.std(0).max() < 1.0
        # idle frames: the actor is visible (a box) although no action is going on
        idle = ~np.isnan(v.actor_boxes[:, 0]) & (labels == 0)
        assert idle.sum() >= 2 * len(v.instances) * 3
    # the actions move the actor as named
    moves = {1: +1, 2: -1}
    for v in videos:
        for inst in v.instances:
            if inst.label in moves:
                assert np.sign(inst.boxes[-1, 0] - inst.boxes[0, 0]) == moves[inst.label]


def test_window_labels_and_clips(videos):
    v = videos[0]
    inst = v.instances[0]
    assert window_label(v, inst.start, inst.end - inst.start) == inst.label
    clips = window_clips(videos, 16, 4)
    assert {label for _, _, label in clips} >= {0}
    for vi, s, label in clips:
        labels = videos[vi].frame_labels()[s:s + 16]
        assert (labels == label).mean() >= (0.75 if label else 0.9)


def test_sliding_windows_cover_the_video_and_refuse_short_ones():
    w = sliding_windows(30, 16, 4)
    assert w.tolist() == [[0, 16], [4, 20], [8, 24], [12, 28], [14, 30]]
    with pytest.raises(ValueError, match="shorter than one window"):
        sliding_windows(10, 16, 4)
    # a stride over the window would leave frames without a score, which would read as "not background"
    with pytest.raises(ValueError, match="stride 20 is longer than the window 16"):
        sliding_windows(100, 16, 20)
    with pytest.raises(ValueError, match="frame 16 is in no window"):
        frame_scores(np.full((2, 3), 1 / 3), np.array([[0, 16], [32, 48]]), 48)


def oracle_scorer(num_classes: int, noise: float, seed: int = 0):
    """Scores a window of frame *labels* by their class histogram plus noise: localisation in isolation."""
    rng = np.random.default_rng(seed)

    def scorer(windows):
        out = []
        for w in windows:
            p = np.bincount(w, minlength=num_classes) / len(w) + noise * rng.random(num_classes)
            out.append(p / p.sum())
        return np.stack(out)

    return scorer


def test_localisation_with_an_oracle_recogniser_finds_the_instances(videos):
    gt, det = {}, {}
    for i, v in enumerate(videos):
        labels = v.frame_labels()
        gt[str(i)] = [(inst.start, inst.end, inst.label) for inst in v.instances]
        det[str(i)], _ = detect_segments(labels, oracle_scorer(len(CLASSES), 0.05, i),
                                         cfg=LocalizeConfig(window=8, stride=2))
    res = localization_map(gt, det)
    assert res["mAP"][0.5] > 0.9 and res["mAP"][0.3] >= res["mAP"][0.5] >= res["mAP"][0.7]
    # a coarse stride blurs the boundaries: strict tIoU suffers first
    wide = LocalizeConfig(window=24, stride=24)
    coarse = {str(i): detect_segments(v.frame_labels(), oracle_scorer(len(CLASSES), 0.05, i), cfg=wide)[0]
              for i, v in enumerate(videos)}
    assert localization_map(gt, coarse)["mAP"][0.7] < res["mAP"][0.7]


def test_localize_merges_and_suppresses_by_hand():
    probs = np.zeros((40, 3))
    probs[:, 0] = 1
    probs[10:20] = [0.1, 0.8, 0.1]
    probs[25:35] = [0.2, 0.1, 0.7]
    dets = localize(probs, 0, LocalizeConfig(thresholds=(0.5, 0.7), top_classes=1, min_length=3))
    assert [(s, e, c) for s, e, c, _ in dets] == [(10, 20, 1), (25, 35, 2)]
    assert dets[0][3] == pytest.approx(0.8 * 0.9)
    fs = frame_scores(np.array([[1.0, 0], [0, 1.0]]), np.array([[0, 4], [2, 6]]), 6)
    np.testing.assert_allclose(fs[:, 1], [0, 0, 0.5, 0.5, 1, 1])


def test_motion_boxes_follow_a_running_actor(videos):
    from deepnotes.video.two_stream.flow import compute_flow

    def mean_iou(boxes, inst):
        ious = [box_iou(inst.boxes[k], boxes[k][None])[0] if not np.isnan(boxes[k, 0]) else 0.0
                for k in range(len(boxes))]
        return float(np.mean(ious))

    hits, raw_hits = [], []
    for v in videos:
        for inst in v.instances:
            if inst.label in (1, 2):
                f = compute_flow(v.frames[inst.start:inst.end], "dis")
                hits.append(mean_iou(boxes_from_flow(f)[0], inst))
                # without removing the camera motion, the panning background moves too
                raw_hits.append(mean_iou(boxes_from_flow(f, compensate=False)[0], inst))
    assert hits and np.mean(hits) > 0.3 and np.mean(hits) > np.mean(raw_hits)


def test_actor_net_learns_boxes(videos):
    train = videos[0]
    net = train_actor_net(train.frames, train.actor_boxes, steps=50, batch_size=8, crop=32, seed=0)
    test = videos[1]
    boxes = actor_net_boxes(net, test.frames)
    ious = [box_iou(inst.boxes[k], boxes[inst.start + k][None])[0]
            for inst in test.instances for k in range(0, inst.end - inst.start, 3)
            if not np.isnan(boxes[inst.start + k, 0])]
    assert len(ious) > 5 and np.mean(ious) > 0.4


def test_result_and_ground_truth_json_round_trip(videos, tmp_path):
    named = {f"v{i}": v for i, v in enumerate(videos)}
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(ground_truth_json(named)))
    gt, classes = load_ground_truth(gt_path)
    assert classes == list(CLASSES)
    first = videos[0].instances[0]
    assert gt["v0"][0] == pytest.approx((first.start / 10, first.end / 10, first.label))
    boxes = np.full((96, 4), np.nan, np.float32)
    boxes[first.start] = [1, 2, 3, 4]
    entry = detection_entry(first.start, first.end, CLASSES[first.label], 0.9, 10.0, boxes)
    assert entry["boxes"] == [[first.start, 1.0, 2.0, 3.0, 4.0]]
    res_path = tmp_path / "res.json"
    res_path.write_text(json.dumps(results_json({"v0": [entry]})))
    loaded = load_results(res_path, classes)
    assert localization_map({"v0": gt["v0"][:1]}, loaded)["mAP"][0.7] == pytest.approx(1.0)
    bad = json.loads(res_path.read_text())
    bad["results"]["v0"][0]["label"] = "dancing"
    res_path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"results.v0\[0\].label 'dancing'"):
        load_results(res_path, classes)


def test_render_draws_boxes_and_timeline(videos):
    v = videos[0]
    inst = v.instances[0]
    boxes = np.full((96, 4), np.nan, np.float32)
    boxes[inst.start:inst.end] = inst.boxes
    out = render_detections(v.frames, [(inst.start, inst.end, inst.label, 0.9)], boxes, list(CLASSES),
                            scale=2)
    assert out.shape == (96, 128 + 12, 128, 3)
    x1, y1 = (inst.boxes[0][:2] * 2).astype(int)
    assert not np.array_equal(out[inst.start, y1, x1 + 3], np.repeat(v.frames[inst.start], 2, 0)[y1, x1 + 3])
    assert out[inst.start, 128 + 5].any() and not out[0, :128].std() == 0


def test_sliding_windows_read_what_the_run_modality_needs():
    """A two-stream run's windows carry flow computed on the fly; an RGB run's are the frames themselves."""
    from deepnotes.video.config import TrainConfig
    from deepnotes.video.two_stream.dataset import TwoStreamLoader
    from deepnotes.video.untrimmed.detect import window_loader

    def frames(record, indices):
        return None

    two = TrainConfig(model="two_stream", train="t.txt", out="o", modality="two_stream")
    assert isinstance(window_loader(two, frames), TwoStreamLoader)
    assert window_loader(TrainConfig(model="tsn", train="t.txt", out="o"), frames) is frames
