import json

import numpy as np
import pytest

from deepnotes.video.data.decode import read_video
from deepnotes.video.data.lists import read_list
from deepnotes.video.data.synth import MOTION_CLASSES, motion_video, scene_video, synth_dataset
from deepnotes.video.data.synth_hard import HARD_CLASSES, motion_hard_video, textured_background


def test_pairs_are_time_reverses_of_each_other():
    """The same random draws give class 2k+1 as class 2k read backwards: frames are equally distributed."""
    for pair in range(4):
        a = motion_video(2 * pair, 8, 32, np.random.default_rng(5), noise=0.0)
        b = motion_video(2 * pair + 1, 8, 32, np.random.default_rng(5), noise=0.0)
        np.testing.assert_array_equal(a[::-1], b)
        assert not np.array_equal(a[0], a[-1])  # and the object really moves


def test_motion_classes_move_the_way_they_are_named():
    def centroid(video):
        diff = np.abs(video.astype(float) - np.median(video, axis=0)).sum(-1)
        ys, xs = np.mgrid[: video.shape[1], : video.shape[2]]
        w = diff / diff.sum(axis=(1, 2), keepdims=True)
        return (w * xs).sum((1, 2)), (w * ys).sum((1, 2))

    x, _ = centroid(motion_video(MOTION_CLASSES.index("move_left"), 8, 32, np.random.default_rng(0)))
    assert x[-1] < x[0] - 5
    _, y = centroid(motion_video(MOTION_CLASSES.index("move_up"), 8, 32, np.random.default_rng(0)))
    assert y[-1] < y[0] - 5


def test_scene_motion_does_not_depend_on_class():
    a = scene_video(0, 6, 32, np.random.default_rng(1))
    b = scene_video(1, 6, 32, np.random.default_rng(1))
    assert a.shape == b.shape == (6, 32, 32, 3) and not np.array_equal(a, b)


def _same_twice(kind: str, tmp_path, size: int) -> dict:
    """Write ``kind`` twice with one seed: 8 classes, byte-identical videos of (4, size, size, 3)."""
    p1 = synth_dataset(kind, tmp_path / "a", 1, 1, frames=4, size=size, seed=3)
    p2 = synth_dataset(kind, tmp_path / "b", 1, 1, frames=4, size=size, seed=3)
    r1, r2 = read_list(p1["train"]), read_list(p2["train"])
    assert [r.label for r in r1] == list(range(8))
    assert all(a.path.read_bytes() == b.path.read_bytes() for a, b in zip(r1, r2, strict=True))
    assert read_video(r1[0].path).shape == (4, size, size, 3)
    return p1


def test_dataset_is_deterministic_and_readable(tmp_path):
    _same_twice("scene", tmp_path, 16)
    with pytest.raises(ValueError, match="unknown synthetic"):
        synth_dataset("sports", tmp_path / "c", 1)


def test_hard_pairs_are_exact_time_reverses():
    """motion_hard: class 2k+1 is class 2k's video (noise included) read backwards, and the object moves."""
    for pair in range(4):
        a = motion_hard_video(2 * pair, 8, 64, np.random.default_rng(7))
        b = motion_hard_video(2 * pair + 1, 8, 64, np.random.default_rng(7))
        np.testing.assert_array_equal(a[::-1], b)
        assert np.abs(a[0].astype(int) - a[-1].astype(int)).max() > 60


def test_hard_videos_draw_their_own_background_shape_and_colour():
    """Two videos of one class differ in background and object: only the motion is shared."""
    a = motion_hard_video(0, 4, 64, np.random.default_rng(1), noise=0.0)
    b = motion_hard_video(0, 4, 64, np.random.default_rng(2), noise=0.0)
    assert a.shape == b.shape == (4, 64, 64, 3) and a.dtype == np.uint8
    assert np.abs(np.median(a[0], (0, 1)) - np.median(b[0], (0, 1))).max() > 5
    # a textured background, not a flat one: the static pixels vary across the frame
    static = np.abs(a.astype(int) - a[0]).sum((0, 3)) == 0
    assert a[0][static].std(0).mean() > 10


def test_hard_classes_move_the_way_they_are_named():
    def centroid_and_area(video):
        moving = np.abs(video.astype(float) - np.median(video, axis=0)).sum(-1) > 60
        ys, xs = np.mgrid[: video.shape[1], : video.shape[2]]
        n = moving.sum((1, 2))
        return (moving * xs).sum((1, 2)) / n, (moving * ys).sum((1, 2)) / n, n

    rng = np.random.default_rng
    x, _, _ = centroid_and_area(motion_hard_video(HARD_CLASSES.index("move_right"), 8, 64, rng(0), 0))
    assert x[-1] > x[0] + 10
    _, y, _ = centroid_and_area(motion_hard_video(HARD_CLASSES.index("move_up"), 8, 64, rng(0), 0))
    assert y[-1] < y[0] - 10
    video = motion_hard_video(HARD_CLASSES.index("grow"), 8, 64, rng(0), 0)
    changed = np.abs(video.astype(int) - video[0]).sum(-1) > 60
    assert changed[-1].sum() > changed[1].sum() > 0  # the object covers ever more of the first frame


def test_hard_dataset_is_deterministic_with_its_own_classes(tmp_path):
    p1 = _same_twice("motion_hard", tmp_path, 32)
    assert p1["classes"].read_text().split() == HARD_CLASSES
    assert json.loads(p1["flip_map"].read_text()) == {"0": 1, "1": 0, "6": 7, "7": 6}
    # the easy set's bytes do not change with the new kind
    p3 = synth_dataset("motion", tmp_path / "c", 1, 1, frames=4, size=32, seed=3)
    assert p3["classes"].read_text().split() == MOTION_CLASSES


def test_textured_and_random_variants_keep_the_mirrored_pairs():
    """motion_textured (the motion pairs on a texture) and motion_random (motion_hard, milder) keep each
    pair a time reverse; the plain motion set's frames are unchanged by the texture option's default."""
    from deepnotes.video.data.synth import motion_textured_video
    from deepnotes.video.data.synth_hard import motion_random_video

    for make in (motion_textured_video, motion_random_video):
        a = make(6, 6, 32, np.random.default_rng(3))
        b = make(7, 6, 32, np.random.default_rng(3))
        assert a.shape == (6, 32, 32, 3) and not np.array_equal(a[0], a[-1])
        if make is motion_random_video:  # noise included in the reverse
            np.testing.assert_array_equal(a[::-1], b)
    plain = motion_video(0, 4, 32, np.random.default_rng(0))
    np.testing.assert_array_equal(plain, motion_video(0, 4, 32, np.random.default_rng(0), texture=0.0))
    assert not np.array_equal(motion_textured_video(0, 4, 32, np.random.default_rng(0)), plain)
    # the texture's contrast scales its deviation from the middle of the two colours
    full = textured_background(np.random.default_rng(4), 64)
    half = textured_background(np.random.default_rng(4), 64, contrast=0.5)
    np.testing.assert_allclose(half.std((0, 1)), 0.5 * full.std((0, 1)), rtol=1e-4)


def test_claims_motion_data_follows_the_setup(tmp_path):
    """experiments.dataset(kind="motion") draws the order-only set the Setup names."""
    from deepnotes.video.experiments import Setup, dataset

    hard = dataset(tmp_path, "motion", Setup(frames=4, size=16, n_per_class=1, val_per_class=1,
                                             motion="motion_hard"), 0)
    assert hard["classes"].read_text().split() == HARD_CLASSES
    plain = dataset(tmp_path, "motion", Setup(frames=4, size=16, n_per_class=1, val_per_class=1), 0)
    assert plain["classes"].read_text().split() == MOTION_CLASSES
