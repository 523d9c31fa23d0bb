import json

import numpy as np
import pytest
import torch

from deepnotes.pose.data.coco import AnnotationError, load_coco
from deepnotes.pose.data.topdown import TopDownDataset, collate


def _write(tmp_path, anns, images=None, name="ann.json"):
    (tmp_path / "images").mkdir(exist_ok=True)
    images = images if images is not None else [{"id": 1, "file_name": "a.png", "width": 50, "height": 40}]
    path = tmp_path / name
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": []}))
    return path


def _ann(**kw):
    kp = []
    for j in range(17):
        kp += [10.0 + j, 20.0, 2]
    return {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 30, 30], "keypoints": kp, **kw}


def test_bad_annotations_are_skipped_and_counted(tmp_path):
    import cv2

    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((40, 50, 3), np.uint8))
    outside = _ann()
    outside["keypoints"][0] = 80.0
    none_labelled = _ann()
    none_labelled["keypoints"] = [0] * 51
    anns = [_ann(), {k: v for k, v in _ann().items() if k != "bbox"}, _ann(bbox=[1, 1, 0, 10]), outside,
            none_labelled, _ann(iscrowd=1), _ann(image_id=2)]
    images = [{"id": 1, "file_name": "a.png", "width": 50, "height": 40},
              {"id": 2, "file_name": "missing.png", "width": 50, "height": 40}]
    data = load_coco(_write(tmp_path, anns, images))
    assert len(data.samples) == 1
    assert data.skipped == {"missing_box": 1, "zero_area_box": 1, "keypoint_outside_image": 1,
                            "no_keypoints": 1, "not_a_single_person": 1, "missing_image": 1}
    assert "skipped" in data.summary() and "missing_box: 1" in data.summary()


@pytest.mark.parametrize(
    ("anns", "images", "message"),
    [
        ([{**_ann(), "keypoints": [1, 2, 3]}], None, "annotations[0].keypoints should be 51 numbers"),
        ([{k: v for k, v in _ann().items() if k != "image_id"}], None, "annotations[0].image_id is missing"),
        ([_ann(image_id=9)], None, "annotations[0].image_id 9 is not in 'images'"),
        ([_ann(bbox="wide")], None, "annotations[0].bbox should be [x, y, w, h]"),
        ([], [{"id": 1}], "images[0].file_name is missing"),
        ([], [{"id": "one", "file_name": "a.png"}], "images[0].id should be int"),
        ([], [{"id": 1, "file_name": "../../etc/passwd"}], "points outside"),
        ([], [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}],
         "images[1].id 1 repeats images[0].id"),
        ([_ann(bbox=[5, float("nan"), 30, 30])], None, "annotations[0].bbox has a non-finite value"),
        ([_ann(area="big")], None, "annotations[0].area should be a number, got 'big'"),
    ],
)
def test_malformed_files_name_the_field(tmp_path, anns, images, message):
    with pytest.raises(AnnotationError) as err:
        load_coco(_write(tmp_path, anns, images), check_files=False)
    assert message in str(err.value) and "ann.json" in str(err.value)


def test_json_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(AnnotationError, match="broken.json: not valid JSON at line 2"):
        load_coco(path)


def test_unreadable_image_is_dropped_and_counted(tiny_data, tmp_path):
    data = load_coco(tiny_data["val"])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    samples = list(data.samples[:3])
    samples[1] = type(samples[1])(**{**samples[1].__dict__, "image_path": broken})
    ds = TopDownDataset(samples, (32, 24))
    batch = collate([ds[i] for i in range(3)])
    assert batch["unreadable"] == 1 and batch["image"].shape == (2, 3, 32, 24)
    assert batch["keypoints"].shape == (2, 17, 2) and torch.equal(batch["index"], torch.tensor([0, 2]))


@pytest.mark.parametrize(("area", "expected"), [(0, 900.0), (None, 900.0), (-5, 900.0), (640.5, 640.5)])
def test_unusable_area_falls_back_to_the_box(tmp_path, area, expected):
    # pycocotools divides by the area: 0 would make every OKS of this person 0
    ann = _ann() if area is None else _ann(area=area)
    data = load_coco(_write(tmp_path, [ann]), check_files=False)
    assert data.samples[0].area == expected
