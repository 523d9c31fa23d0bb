"""A stereo pair: extrinsics, rectification and the check that matters, the rectified vertical disparity.

When both cameras belong to a calibrated rig, the pair's R, T come from the joint bundle adjustment
(R = R_r R_l^T, T = T_r - R T_l); otherwise ``cv2.stereoCalibrate`` with the intrinsics held fixed (its
fisheye twin for two fisheye cameras; for a fisheye + pinhole pair, on both sides' undistorted points).
After ``stereoRectify`` corresponding corners should share a row: the mean |y_l - y_r| of every corner
seen by both cameras, undistorted and rectified, is ``rectified_vertical_error`` (pixels).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from deepnotes.calib.intrinsics import IntrinsicsResult

log = logging.getLogger("deepnotes.calib")


def _skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])


def essential_fundamental(R: np.ndarray, T: np.ndarray, K1: np.ndarray,
                          K2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E = [T]x R and F = K2^-T E K1^-1 (x_r^T F x_l = 0)."""
    E = _skew(T.ravel()) @ R
    F = np.linalg.inv(K2).T @ E @ np.linalg.inv(K1)
    return E, F / F[2, 2] if abs(F[2, 2]) > 1e-12 else F


def _undistort(pts: np.ndarray, intr: IntrinsicsResult, R: np.ndarray | None = None,
               P: np.ndarray | None = None) -> np.ndarray:
    p = pts.reshape(-1, 1, 2).astype(np.float64)
    if intr.model == "fisheye":
        return cv2.fisheye.undistortPoints(p, intr.K, intr.dist.reshape(1, -1), R=R, P=P).reshape(-1, 2)
    return cv2.undistortPoints(p, intr.K, intr.dist.reshape(1, -1), R=R, P=P).reshape(-1, 2)


def rectify(left: IntrinsicsResult, right: IntrinsicsResult, R: np.ndarray, T: np.ndarray) -> dict:
    """``stereoRectify`` (or its fisheye twin): R1, R2, P1, P2, Q."""
    size = tuple(left.image_size)
    if left.model == "fisheye" and right.model == "fisheye":
        R1, R2, P1, P2, Q = cv2.fisheye.stereoRectify(left.K, left.dist, right.K, right.dist, size, R,
                                                      T.reshape(3, 1), flags=cv2.CALIB_ZERO_DISPARITY)
        f = min(left.K[1, 1], right.K[1, 1])
        if not 0.25 * f <= P1[1, 1] <= 4 * f:
            # fitted k3/k4 that fold the lens model back inside the image make OpenCV's choice of the new
            # focal length collapse (8e-4 px was seen): the maps would show nothing, and a vertical error
            # measured in those units reads as a perfect 0. Keep R1, R2 and project with the cameras' focal.
            log.warning("fisheye stereoRectify chose a focal length of %.3g px against the cameras' %.1f px "
                        "(the distortion fit folds over inside the image?); using the cameras' focal length",
                        P1[1, 1], f)
            P1, P2, Q = rectified_projections(f, left.K[0, 2], left.K[1, 2], R2 @ T.ravel())
    else:
        # a mixed pair: the pinhole function would read fisheye k1..k4 as k1 k2 p1 p2, so it gets no
        # distortion for the fisheye side. R1, R2 depend only on R, T and stay exact; only the choice of P
        # (the valid region for alpha=0) ignores that side's distortion. The maps then undistort with each
        # camera's model.
        d_l, d_r = (np.zeros(5) if m == "fisheye" and mixed else d
                    for m, d, mixed in ((left.model, left.dist, right.model != "fisheye"),
                                        (right.model, right.dist, left.model != "fisheye")))
        R1, R2, P1, P2, Q, _, _ = cv2.stereoRectify(left.K, d_l, right.K, d_r, size, R, T.reshape(3, 1),
                                                    flags=cv2.CALIB_ZERO_DISPARITY, alpha=0)
    return {"R1": R1, "R2": R2, "P1": P1, "P2": P2, "Q": Q}


def rectified_projections(f: float, cx: float, cy: float,
                          t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P1, P2, Q of a rectified pair with focal ``f``, principal point (cx, cy) for both cameras and the
    baseline ``t = R2 @ T`` in the rectified frame, in the form ``cv2.stereoRectify`` returns them
    (CALIB_ZERO_DISPARITY): the baseline enters P2 along x (or y for a vertical pair) and Q."""
    P1 = np.array([[f, 0, cx, 0], [0, f, cy, 0], [0, 0, 1, 0]], float)
    P2 = P1.copy()
    axis = 0 if abs(t[0]) >= abs(t[1]) else 1
    P2[axis, 3] = t[axis] * f
    Q = np.array([[1, 0, 0, -cx], [0, 1, 0, -cy], [0, 0, 0, f], [0, 0, -1 / t[axis], 0]], float)
    return P1, P2, Q


def vertical_error(left: IntrinsicsResult, right: IntrinsicsResult, rect: dict, pts_l: list[np.ndarray],
                   pts_r: list[np.ndarray]) -> float:
    """Mean |y_left - y_right| (px) of corresponding corners after rectification."""
    if not pts_l:
        return float("nan")
    yl = _undistort(np.concatenate(pts_l), left, rect["R1"], rect["P1"])[:, 1]
    yr = _undistort(np.concatenate(pts_r), right, rect["R2"], rect["P2"])[:, 1]
    return float(np.mean(np.abs(yl - yr)))


def stereo_calibrate(left: IntrinsicsResult, right: IntrinsicsResult, obj: list[np.ndarray],
                     pts_l: list[np.ndarray],
                     pts_r: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float]:
    """Pairwise extrinsics with the intrinsics fixed: (R, T, rms)."""
    # (1, N, c) layout: cv2.fisheye rejects (N, 1, c), the pinhole functions accept both
    o = [x.astype(np.float64).reshape(1, -1, 3) for x in obj]
    a = [x.astype(np.float64).reshape(1, -1, 2) for x in pts_l]
    b = [x.astype(np.float64).reshape(1, -1, 2) for x in pts_r]
    crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    if left.model == "fisheye" and right.model == "fisheye":
        rms, *_, R, T = cv2.fisheye.stereoCalibrate(o, a, b, left.K, left.dist, right.K, right.dist,
                                                    left.image_size, flags=cv2.CALIB_FIX_INTRINSIC,
                                                    criteria=crit)[:7]
    elif "fisheye" in (left.model, right.model):
        # a mixed pair has no OpenCV function: undistort both sides to normalised coordinates and solve with
        # K = I and no distortion; the RMS comes back in normalised units, scaled to pixels by the mean focal
        na = [_undistort(x, left).reshape(1, -1, 2) for x in a]
        nb = [_undistort(x, right).reshape(1, -1, 2) for x in b]
        eye, zero = np.eye(3), np.zeros(5)
        rms, _, _, _, _, R, T, _, _ = cv2.stereoCalibrate(o, na, nb, eye, zero, eye.copy(), zero.copy(),
                                                          left.image_size, flags=cv2.CALIB_FIX_INTRINSIC,
                                                          criteria=crit)
        focal = np.mean([left.K[0, 0], left.K[1, 1], right.K[0, 0], right.K[1, 1]])
        return R, T.ravel(), float(rms * focal)
    else:
        rms, _, _, _, _, R, T, _, _ = cv2.stereoCalibrate(o, a, b, left.K, left.dist, right.K, right.dist,
                                                          left.image_size, flags=cv2.CALIB_FIX_INTRINSIC,
                                                          criteria=crit)
    return R, T.ravel(), float(rms)


def stereo_entry(left: IntrinsicsResult, right: IntrinsicsResult, R: np.ndarray, T: np.ndarray, rms: float,
                 pts_l: list[np.ndarray], pts_r: list[np.ndarray]) -> dict:
    """Everything ``calibration.yaml`` stores for a pair."""
    E, F = essential_fundamental(R, T, left.K, right.K)
    rect = rectify(left, right, R, T)
    err = vertical_error(left, right, rect, pts_l, pts_r)
    return {"left": left.name, "right": right.name, "R": R, "T": T.reshape(3, 1), "E": E, "F": F, **rect,
            "rms": rms, "rectified_vertical_error": err}


def rectified_preview(path: Path, left: IntrinsicsResult, right: IntrinsicsResult, entry: dict,
                      img_l: np.ndarray, img_r: np.ndarray) -> None:
    """Side-by-side rectified pair with horizontal epipolar lines every 32 px (PNG)."""
    size = tuple(left.image_size)
    views = []
    for intr, R, P, img in ((left, entry["R1"], entry["P1"], img_l),
                            (right, entry["R2"], entry["P2"], img_r)):
        if intr.model == "fisheye":
            m1, m2 = cv2.fisheye.initUndistortRectifyMap(intr.K, intr.dist, R, P, size, cv2.CV_32FC1)
        else:
            m1, m2 = cv2.initUndistortRectifyMap(intr.K, intr.dist, R, P, size, cv2.CV_32FC1)
        views.append(cv2.remap(img, m1, m2, cv2.INTER_LINEAR))
    canvas = cv2.cvtColor(np.hstack(views), cv2.COLOR_GRAY2BGR)
    for y in range(16, canvas.shape[0], 32):
        cv2.line(canvas, (0, y), (canvas.shape[1] - 1, y), (0, 200, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), canvas)
