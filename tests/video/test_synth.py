import numpy as np
import pytest

from deepnotes.video.data.decode import read_video
from deepnotes.video.data.lists import read_list
from deepnotes.video.data.synth import MOTION_CLASSES, motion_video, scene_video, synth_dataset


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


def test_dataset_is_deterministic_and_readable(tmp_path):
    p1 = synth_dataset("scene", tmp_path / "a", 1, 1, frames=4, size=16, seed=3)
    p2 = synth_dataset("scene", tmp_path / "b", 1, 1, frames=4, size=16, seed=3)
    r1, r2 = read_list(p1["train"]), read_list(p2["train"])
    assert [r.label for r in r1] == list(range(8))
    assert all(a.path.read_bytes() == b.path.read_bytes() for a, b in zip(r1, r2, strict=True))
    assert read_video(r1[0].path).shape == (4, 16, 16, 3)
    with pytest.raises(ValueError, match="unknown synthetic"):
        synth_dataset("sports", tmp_path / "c", 1)
