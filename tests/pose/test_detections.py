"""Detector boxes (mmpose's bbox_file), mmpose's person rescoring, OKS NMS, the flip test, predict --boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.pose.config import PoseConfig
from deepnotes.pose.data.coco import load_coco
from deepnotes.pose.data.detections import load_detections, parse_boxes
from deepnotes.pose.model import PoseModel
from deepnotes.pose.rescoring import nms_per_image, oks, oks_nms, rescore
from deepnotes.pose.skeleton import COCO_SIGMAS, flip_permutation
from deepnotes.pose.train import TrainConfig, train

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    """A briefly trained RLE run (its confidences vary, so rescoring and NMS have something to rank)."""
    out = tmp_path_factory.mktemp("det") / "rle"
    config = PoseConfig(head="rle", input_hw=(64, 48), depth=10, width=4, stem_stride=2, stages=4)
    train(tiny_data["train"], tiny_data["val"], out, config, TrainConfig(epochs=2, batch_size=12, lr=3e-3),
          torch.device("cpu"), log=lambda _: None)
    return out


def _det_file(path, samples, jitter=0.0, seed=0, extra=()):
    rng = np.random.default_rng(seed)
    dets = []
    for s in samples:
        x, y, w, h = s.bbox
        dx, dy = rng.normal(0, jitter, 2) * np.array([w, h])
        dets.append({"image_id": s.image_id, "category_id": 1, "score": 1.0,
                     "bbox": [float(x + dx), float(y + dy), float(w), float(h)]})
    path.write_text(json.dumps(dets + list(extra)))
    return path


def _eval(run, ann, *extra):
    res = runner.invoke(app, ["pose", "eval", str(run), "--ann", str(ann), "--device", "cpu", *extra])
    assert res.exit_code == 0, res.output
    return json.loads((run / "eval.json").read_text()), json.loads((run / "results.json").read_text())


def test_ground_truth_boxes_as_detections_give_the_ground_truth_evaluation(run, tiny_data, tmp_path):
    samples = load_coco(tiny_data["val"]).samples
    other = {"image_id": samples[0].image_id, "category_id": 3, "score": 0.99, "bbox": [0, 0, 30, 30]}
    dets = _det_file(tmp_path / "gt.json", samples, extra=[other])  # another category: left out
    gt_metrics, gt_results = _eval(run, tiny_data["val"])
    det_metrics, det_results = _eval(run, tiny_data["val"], "--bbox-file", str(dets))
    assert det_metrics["skipped_boxes"] == {"not_a_person": 1} and det_metrics["boxes"] == str(dets)
    for key in ("AP", "AP50", "AP75"):
        assert det_metrics[key] == gt_metrics[key], key
    assert det_results == gt_results  # the same crops, joints, scores and NMS
    assert "PCK@0.1" in gt_metrics and "PCK@0.1" not in det_metrics  # no pairing with detections
    # jittered boxes change the crops and so the results
    _, jittered = _eval(run, tiny_data["val"], "--bbox-file",
                        str(_det_file(tmp_path / "j.json", samples, jitter=0.15)))
    assert jittered != gt_results


def test_detection_file_errors_name_the_entry(tmp_path):
    bad = tmp_path / "d.json"
    bad.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5},
                               {"image_id": 1, "bbox": [0, 0, 5], "score": 0.5}]))
    with pytest.raises(ValueError, match=r"\[1\]\.bbox should be \[x, y, w, h\]"):
        load_detections(bad)
    bad.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 5, 5]}]))
    with pytest.raises(ValueError, match=r"\[0\]\.score is missing"):
        load_detections(bad)
    bad.write_text(json.dumps({"annotations": []}))
    with pytest.raises(ValueError, match="is a list of"):
        load_detections(bad)
    good = tmp_path / "g.json"
    good.write_text(json.dumps([
        {"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5, "category_id": 1},
        {"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.1, "category_id": 1},
        {"image_id": 2, "bbox": [0, 0, 5, 5], "score": 0.9, "category_id": 1},
        {"image_id": 1, "bbox": [0, 0, 0, 5], "score": 0.9, "category_id": 1},
        {"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9, "category_id": 2},
    ]))
    got = load_detections(good, image_ids={1}, score_thr=0.3)
    assert [d.score for d in got.boxes] == [0.5]
    assert got.skipped == {"below_score_thr": 1, "unknown_image": 1, "zero_area_box": 1, "not_a_person": 1}


def test_eval_with_a_bad_detection_file_is_a_user_error(run, tiny_data, tmp_path):
    bad = tmp_path / "d.json"
    bad.write_text(json.dumps([{"image_id": 1, "bbox": "x", "score": 1}]))
    res = runner.invoke(app, ["pose", "eval", str(run), "--ann", str(tiny_data["val"]),
                              "--bbox-file", str(bad)])
    assert res.exit_code == 2 and "[0].bbox" in res.output


def test_rescoring_is_box_score_times_mean_joint_score_above_the_threshold():
    joints = np.array([[0.1] * 10 + [0.5] * 4 + [0.9] * 3,  # 7 above 0.2: mean (4*0.5 + 3*0.9) / 7
                       [0.15] * 17,                         # none above: 0
                       [0.2] * 16 + [0.3]])                 # 0.2 is not above 0.2
    got = rescore(np.array([0.8, 1.0, 0.5]), joints, 0.2)
    np.testing.assert_allclose(got, [0.8 * (4 * 0.5 + 3 * 0.9) / 7, 0.0, 0.5 * 0.3])


def test_oks_matches_pycocotools():
    """With equal areas and every joint labelled, mmpose's OKS equals COCO's (pycocotools computeOks)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    gt_xy = rng.uniform(10, 90, (17, 2))
    dts = gt_xy[None] + rng.normal(0, 3, (4, 17, 2))
    area = 2500.0
    coco = COCO()
    coco.dataset = {"images": [{"id": 1}], "categories": [{"id": 1, "name": "person"}], "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": area, "bbox": [0, 0, 100, 100],
         "num_keypoints": 17, "keypoints": np.concatenate([gt_xy, np.full((17, 1), 2)], 1).ravel().tolist()}]}
    coco.createIndex()
    res = coco.loadRes([{"image_id": 1, "category_id": 1, "score": 1.0,
                         "keypoints": np.concatenate([d, np.ones((17, 1))], 1).ravel().tolist()}
                        for d in dts])
    ev = COCOeval(coco, res, iouType="keypoints")
    ev.params.kpt_oks_sigmas = COCO_SIGMAS
    ev._prepare()
    reference = ev.computeOks(1, 1)[:, 0]  # (dets, gts), dets in descending score (all equal: input order)
    np.testing.assert_allclose(oks(gt_xy, dts, area, np.full(4, area)), reference, rtol=1e-6)


def test_oks_nms_drops_constructed_duplicates():
    rng = np.random.default_rng(1)
    a = rng.uniform(20, 80, (17, 2))
    b = a + 200.0  # another person far away
    coords = np.stack([a, a + 0.5, b, a + 30.0, b + 0.2])
    scores = np.array([0.8, 0.9, 0.5, 0.7, 0.4])
    areas = np.full(5, 60.0 * 60.0)
    assert oks(a, (a + 0.5)[None], 3600, np.array([3600.0]))[0] > 0.9  # a duplicate by mmpose's threshold
    assert oks(a, (a + 30.0)[None], 3600, np.array([3600.0]))[0] < 0.9  # a neighbour, not a duplicate
    np.testing.assert_array_equal(oks_nms(coords, scores, areas, 0.9), [1, 3, 2])
    # per image: the same persons split over two images keep their duplicates apart
    image_ids = np.array([1, 2, 1, 1, 1])
    np.testing.assert_array_equal(nms_per_image(image_ids, coords, scores, areas, 0.9), [0, 1, 2, 3])


def _outputs(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("head", ["heatmap", "regression", "rle"])
@pytest.mark.parametrize("frame", ["centers", "mmpose"])
def test_flip_of_a_flip_is_the_identity(head, frame):
    torch.manual_seed(0)
    model = PoseModel(PoseConfig(head=head, input_hw=(64, 48), heatmap_hw=(16, 12), depth=10, width=4,
                                 stem_stride=2, stages=4, frame=frame)).eval()
    out = _outputs(model, torch.randn(2, 3, 64, 48))
    twice = model.head.flip_back(model.head.flip_back(out))
    for k in out:
        if head == "heatmap" and frame == "mmpose":  # mmpose's one-pixel shift overwrites the first column
            torch.testing.assert_close(twice[k][..., 1:], out[k][..., 1:])
        else:
            torch.testing.assert_close(twice[k], out[k])


@pytest.mark.parametrize("frame", ["centers", "mmpose"])
def test_flipped_heatmaps_decode_to_the_mirrored_joints(frame):
    """A peak at crop x in the mirrored crop's map of the right wrist is the left wrist at W - 1 - x."""
    from deepnotes.pose.heads.heatmap import HeatmapHead, crop_to_heatmap, gaussian_targets

    head = HeatmapHead(8, (4, 3), (64, 48), (32, 24), frame=frame).eval()
    # points on heatmap pixel centres (stride 2), where argmax decodes exactly
    x, y = (8.0, 40.0) if frame == "mmpose" else (8.5, 40.5)
    xy = torch.tensor([[[20.5, 30.5]] * 17])  # crop pixels
    xy[0, 10] = torch.tensor([x, y])  # right wrist of the mirrored crop
    maps = gaussian_targets(crop_to_heatmap(xy, (64, 48), (32, 24), frame), (32, 24), 2.0)
    got, _ = head.decode(head.flip_back({"heatmaps": maps}))
    # mmpose shifts the mirrored maps one heatmap pixel where 1 - 1/stride was due: one crop pixel right
    want_x = 47 - x + (1.0 if frame == "mmpose" else 0.0)
    torch.testing.assert_close(got[0, 9], torch.tensor([want_x, y]), atol=1e-4, rtol=0)


def test_flip_test_averages_the_mirrored_prediction():
    torch.manual_seed(0)
    model = PoseModel(PoseConfig(head="regression", input_hw=(64, 48), depth=10, width=4, stem_stride=2,
                                 stages=4)).eval()
    x = torch.randn(3, 3, 64, 48)
    with torch.no_grad():
        xy, _ = model.predict(x)
        xy_m, _ = model.predict(x.flip(-1))
        both, _ = model.predict(x, flip=True)
    mirrored = torch.stack([47 - xy_m[..., 0], xy_m[..., 1]], -1)[:, flip_permutation()]
    torch.testing.assert_close(both, (xy + mirrored) / 2)

    class NoFlipBack(type(model.head)):
        flip_back = None  # a head without it: decoded joints are averaged instead

    model.head.__class__ = NoFlipBack
    with torch.no_grad():
        torch.testing.assert_close(model.predict(x, flip=True)[0], both)


def test_training_flip_is_the_tensor_flip_of_the_crop():
    """The flip test mirrors crops with torch.flip; training mirrors them through the crop affine: the same
    pixels (so a model trained with flips sees in the flip test what it was trained on)."""
    from deepnotes.pose.transforms import box_to_center_size, crop_affine, warp

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (80, 70, 3), dtype=np.uint8)
    center, size = box_to_center_size(np.array([10.0, 12.0, 40.0, 50.0]), 48 / 64)
    plain = warp(image, crop_affine(center, size, (64, 48)), (64, 48)).astype(int)
    flipped = warp(image, crop_affine(center, size, (64, 48), flip=True), (64, 48)).astype(int)
    assert np.abs(flipped - plain[:, ::-1]).max() <= 1


def test_flip_test_through_the_cli(run, tiny_data):
    plain, _ = _eval(run, tiny_data["val"])
    flipped, _ = _eval(run, tiny_data["val"], "--flip-test")
    assert flipped["flip_test"] is True and plain["flip_test"] is False
    assert flipped["mean_error_px"] != plain["mean_error_px"]


def test_predict_draws_every_box(run, tiny_data, tmp_path):
    image = tiny_data["root"] / "val" / "images" / "0001_000000.png"
    out = tmp_path / "drawn.png"

    def predict(*args):
        return runner.invoke(app, ["pose", "predict", str(run), str(image), "--out", str(out), *args])

    res = predict("--boxes", "5,5,30,40;20,10,30,40", "--device", "cpu", "--flip-test")
    assert res.exit_code == 0, res.output
    assert "person 1: box 5,5,30,40" in res.output and "person 2: box 20,10,30,40" in res.output
    assert res.output.count("left_wrist") == 2 and out.is_file()
    dets = tmp_path / "d.json"
    dets.write_text(json.dumps([{"image_id": 0, "bbox": [5, 5, 30, 40], "score": 0.9, "category_id": 1}]))
    res = predict("--boxes", str(dets))  # a file about one image: all its boxes
    assert res.exit_code == 0 and "person 1: box 5,5,30,40" in res.output and "person 2" not in res.output
    dets.write_text(json.dumps([{"image_id": i, "bbox": [5, 5, 30, 40], "score": 0.9} for i in (3, 4)]))
    res = predict("--boxes", str(dets))  # several images, none of them this one
    assert res.exit_code == 2 and "no person box for 0001_000000.png" in res.output and "3, 4" in res.output
    named = tmp_path / "000000000004.png"
    named.write_bytes(image.read_bytes())
    res = runner.invoke(app, ["pose", "predict", str(run), str(named), "--out", str(out),
                              "--boxes", str(dets)])
    assert res.exit_code == 0 and "person 1" in res.output and "person 2" not in res.output
    # the old single --box still works, with a deprecation warning
    res = predict("--box", "5,5,30,40")
    assert res.exit_code == 0 and "deprecated" in res.output and "person 1" in res.output
    res = predict("--boxes", "5,5,30")
    assert res.exit_code == 2 and "box 1" in res.output and "four numbers" in res.output


def test_parse_boxes():
    assert [b.tolist() for b in parse_boxes("1,2,3,4; 5,6,7,8;")] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    with pytest.raises(ValueError, match="box 2 .* positive width"):
        parse_boxes("1,2,3,4;1,2,0,4")
