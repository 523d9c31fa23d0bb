import json

import numpy as np
from pycocotools.coco import COCO

from deepnotes.pose.data.coco import load_coco
from deepnotes.pose.data.synth import render_image
from deepnotes.pose.skeleton import COCO_SIGMAS, FLIP_PAIRS, JOINTS, flip_permutation


def test_skeleton_tables_are_consistent():
    assert len(JOINTS) == 17 and len(COCO_SIGMAS) == 17
    for a, b in FLIP_PAIRS:
        assert JOINTS[a].replace("left", "right") == JOINTS[b]
        assert COCO_SIGMAS[a] == COCO_SIGMAS[b]
    perm = flip_permutation()
    assert (perm[perm] == np.arange(17)).all() and perm[0] == 0


def test_render_is_deterministic_and_independent_of_other_images():
    img_a, anns_a = render_image(3, 5, (64, 64))
    img_b, anns_b = render_image(3, 5, (64, 64))
    assert np.array_equal(img_a, img_b)
    assert all(np.array_equal(a["keypoints"], b["keypoints"]) for a, b in zip(anns_a, anns_b, strict=True))
    other, _ = render_image(4, 5, (64, 64))
    assert not np.array_equal(img_a, other)


def test_visibility_flags_follow_the_image_border():
    seen_outside = seen_occluded = 0
    for i in range(40):
        _, anns = render_image(0, i, (48, 48), max_people=2)
        for a in anns:
            kp = a["keypoints"]
            outside = kp[:, 2] == 0
            assert (kp[outside, :2] == 0).all()
            inside = ~outside
            assert (kp[inside, 0] >= 0).all() and (kp[inside, 0] <= 47).all()
            x, y, w, h = a["bbox"]
            assert w > 0 and h > 0 and a["area"] > 0
            seen_outside += int(outside.sum())
            seen_occluded += int((kp[:, 2] == 1).sum())
    assert seen_outside > 0 and seen_occluded > 0  # the generator exercises both flags


def test_written_dataset_is_valid_coco(tiny_data):
    coco = COCO(str(tiny_data["train"]))  # pycocotools reads it
    assert len(coco.getImgIds()) == 24 and coco.loadCats(1)[0]["keypoints"] == list(JOINTS)
    data = json.loads(tiny_data["train"].read_text())
    ours = load_coco(tiny_data["train"])
    assert len(ours.samples) == len(data["annotations"]) and not ours.skipped
    for s in ours.samples:
        assert s.image_path.is_file()


def test_a_figure_facing_the_camera_has_its_left_on_the_image_right():
    # COCO's convention for photos: a person facing us has the left shoulder, hip, eye on our right
    from deepnotes.pose.data.synth import sample_pose

    rng = np.random.default_rng(0)
    for facing, sign in ((1, 1), (-1, -1)):
        poses = np.stack([sample_pose(rng, 100.0, np.array([50.0, 50.0]), facing) for _ in range(200)])
        for left, right in ((5, 6), (11, 12), (1, 2), (3, 4)):
            assert (sign * (poses[:, left, 0] - poses[:, right, 0]) > 0).all(), (facing, left)
        # arms hang and swing outward, away from the body: wrists sit outside their shoulders on average
        assert sign * (poses[:, 9, 0] - poses[:, 5, 0]).mean() > 0
        assert sign * (poses[:, 10, 0] - poses[:, 6, 0]).mean() < 0
