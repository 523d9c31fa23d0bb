import cv2
import numpy as np

from deepnotes.pose.skeleton import JOINTS
from deepnotes.pose.transforms import (
    Augment,
    apply_affine,
    box_to_center_size,
    crop_affine,
    flip_keypoints,
    invert_affine,
    warp,
)


def test_box_is_widened_to_the_crop_aspect_and_padded():
    center, size = box_to_center_size(np.array([10.0, 20.0, 30.0, 90.0]), aspect=0.75, padding=1.25)
    assert np.allclose(center, [25, 65]) and np.allclose(size, [67.5 * 1.25, 90 * 1.25])


def test_crop_maps_box_centre_to_crop_centre_and_inverts():
    m = crop_affine(np.array([40.0, 30.0]), np.array([24.0, 32.0]), (64, 48), rotation_deg=17, flip=True)
    assert np.allclose(apply_affine(m, np.array([40.0, 30.0])), [23.5, 31.5])
    pts = np.random.default_rng(0).uniform(0, 80, (10, 2))
    assert np.allclose(apply_affine(invert_affine(m), apply_affine(m, pts)), pts)
    # a similarity: distances scale by 48 / 24
    d0 = np.linalg.norm(pts[0] - pts[1])
    d1 = np.linalg.norm(apply_affine(m, pts[:1]) - apply_affine(m, pts[1:2]))
    assert np.isclose(d1, 2 * d0)


def test_image_warp_and_keypoint_map_agree():
    """A bright dot drawn at a point lands, after warping, where the matrix sends the point."""
    img = np.zeros((100, 120, 3), np.uint8)
    p = np.array([70.0, 40.0])
    cv2.circle(img, (70, 40), 2, (255, 255, 255), -1)
    m = crop_affine(np.array([60.0, 50.0]), np.array([60.0, 80.0]), (64, 48), rotation_deg=25, flip=True)
    crop = warp(img, m, (64, 48))[..., 0].astype(float)
    ys, xs = np.mgrid[0:64, 0:48]
    centroid = np.array([(xs * crop).sum(), (ys * crop).sum()]) / crop.sum()
    assert np.linalg.norm(centroid - apply_affine(m, p)) < 0.3


def test_flip_matches_opencv_mirror_and_swaps_sides():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (80, 90, 3), dtype=np.uint8)
    c, s = np.array([45.0, 40.0]), np.array([45.0, 60.0])
    plain, mirrored = crop_affine(c, s, (64, 48)), crop_affine(c, s, (64, 48), flip=True)
    assert np.array_equal(warp(img, mirrored, (64, 48)), cv2.flip(warp(img, plain, (64, 48)), 1))
    kp = rng.uniform(10, 70, (17, 2))
    a, b = apply_affine(plain, kp), flip_keypoints(apply_affine(mirrored, kp))
    lw, rw = JOINTS.index("left_wrist"), JOINTS.index("right_wrist")
    assert np.allclose(b[lw], [47 - a[rw, 0], a[rw, 1]])  # the new left wrist is the mirrored right wrist
    assert np.allclose(flip_keypoints(flip_keypoints(kp)), kp)


def test_augment_sampling_is_bounded_and_seeded():
    aug = Augment(scale=0.3, rotation=20)
    draws = [aug.sample(np.random.default_rng(i)) for i in range(200)]
    factors, rots, flips = zip(*draws, strict=True)
    assert min(factors) >= 0.7 and max(factors) <= 1.3 and max(abs(r) for r in rots) <= 40
    assert 0.3 < np.mean(flips) < 0.7 and np.mean([r == 0 for r in rots]) > 0.25
    assert aug.sample(np.random.default_rng(5)) == aug.sample(np.random.default_rng(5))
