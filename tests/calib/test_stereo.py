"""Rectification details: the projections we build equal OpenCV's; a collapsed fisheye choice is replaced."""

from __future__ import annotations

import cv2
import numpy as np

from deepnotes.calib import stereo
from deepnotes.calib.intrinsics import IntrinsicsResult

K = np.array([[400.0, 0, 320], [0, 400, 240], [0, 0, 1]])
R = cv2.Rodrigues(np.array([0.01, 0.02, -0.01]))[0]
T = np.array([-0.15, 0.002, 0.01])


def test_rectified_projections_have_opencvs_form():
    R1, R2, P1, P2, Q, _, _ = cv2.stereoRectify(K, np.zeros(5), K, np.zeros(5), (640, 480), R,
                                                T.reshape(3, 1), flags=cv2.CALIB_ZERO_DISPARITY, alpha=0)
    ours = stereo.rectified_projections(P1[0, 0], P1[0, 2], P1[1, 2], R2 @ T)
    for got, want in zip(ours, (P1, P2, Q), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-9)


def test_a_collapsed_fisheye_focal_is_replaced_by_the_cameras(monkeypatch):
    # fitted k3/k4 that fold back inside the image made OpenCV pick a focal of 8e-4 px: blank maps, and a
    # vertical error of ~0 "px" in those units
    real = cv2.fisheye.stereoRectify

    def collapsed(*args, **kwargs):
        R1, R2, P1, P2, Q = real(*args, **kwargs)
        P1, P2 = P1.copy(), P2.copy()
        P1[:2, :2] *= 2e-6
        P2[:2, :2] *= 2e-6
        return R1, R2, P1, P2, Q

    monkeypatch.setattr(cv2.fisheye, "stereoRectify", collapsed)
    cams = [IntrinsicsResult(n, "fisheye", (640, 480), K, np.zeros(4), 0.0, {}) for n in ("l", "r")]
    rect = stereo.rectify(*cams, R, T)
    assert rect["P1"][1, 1] == 400.0 and rect["P2"][1, 1] == 400.0
    # corners on the same rectified row stay on one row through the replaced projections
    pts_l = np.array([[300.0, 200.0], [350.0, 260.0]])
    yl = stereo._undistort(pts_l, cams[0], rect["R1"], rect["P1"])[:, 1]
    assert np.all(np.abs(yl) > 50)  # pixel units again, not a collapse towards the principal point's 1e-3
