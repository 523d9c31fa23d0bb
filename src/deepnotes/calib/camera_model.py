"""Camera models in plain numpy, vectorised over points: the projection the bundle adjustment fits.

Conventions (OpenCV's): ``X_cam = R X_ref + T``; pixel ``u = fx x' + cx``, ``v = fy y' + cy`` where
``(x', y')`` are the distorted normalised coordinates.

* ``pinhole``: radial-tangential ``k1 k2 p1 p2 k3`` (5 coefficients);
* ``pinhole_rational``: ``k1 k2 p1 p2 k3 k4 k5 k6`` (8), radial part a ratio of two polynomials in r^2;
* ``fisheye``: equidistant ``k1 k2 k3 k4`` on the angle theta = atan(r) (OpenCV's ``cv2.fisheye``).
"""

from __future__ import annotations

import cv2
import numpy as np

N_DIST = {"pinhole": 5, "pinhole_rational": 8, "fisheye": 4}


def distort(xy: np.ndarray, dist: np.ndarray, model: str) -> np.ndarray:
    """Apply lens distortion to normalised coordinates. ``xy``: (N, 2); ``dist``: (N_DIST[model],)."""
    x, y = xy[:, 0], xy[:, 1]
    r2 = x * x + y * y
    if model == "fisheye":
        k1, k2, k3, k4 = dist[:4]
        r = np.sqrt(r2)
        theta = np.arctan(r)
        t2 = theta * theta
        theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
        # r -> 0: theta_d / r -> 1
        scale = np.where(r > 1e-12, theta_d / np.maximum(r, 1e-12), 1.0)
        return xy * scale[:, None]
    k1, k2, p1, p2, k3 = dist[:5]
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    if model == "pinhole_rational":
        k4, k5, k6 = dist[5:8]
        radial = radial / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], axis=1)


def project(points_cam: np.ndarray, K: np.ndarray, dist: np.ndarray, model: str) -> np.ndarray:
    """Project camera-frame points. ``points_cam``: (N, 3) -> pixels (N, 2)."""
    z = points_cam[:, 2:3]
    xy = points_cam[:, :2] / np.where(np.abs(z) < 1e-12, 1e-12, z)
    xd = distort(xy, dist, model)
    return np.stack([K[0, 0] * xd[:, 0] + K[0, 1] * xd[:, 1] + K[0, 2], K[1, 1] * xd[:, 1] + K[1, 2]], axis=1)


def undistort_to_rays(pixels: np.ndarray, K: np.ndarray, dist: np.ndarray, model: str) -> np.ndarray:
    """Normalised undistorted coordinates (N, 2) of pixels (N, 2), iterated to 1e-10: the inverse of
    :func:`project`."""
    pts = pixels.reshape(-1, 1, 2).astype(np.float64)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
    if model == "fisheye":
        out = cv2.fisheye.undistortPoints(pts, K, dist.reshape(1, -1), criteria=crit)
    else:
        out = cv2.undistortPoints(pts, K, dist.reshape(1, -1), None, None, None, crit)
    return out.reshape(-1, 2)


def board_points(cols: int, rows: int, square: float) -> np.ndarray:
    """Inner chessboard corners in the board frame, row-major (x fastest), z = 0. Shape (cols*rows, 3)."""
    gx, gy = np.meshgrid(np.arange(cols), np.arange(rows))
    return np.stack([gx.ravel() * square, gy.ravel() * square, np.zeros(cols * rows)], axis=1)


def rodrigues(rvec: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) from an axis-angle vector (3,)."""
    return cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3, 1))[0]


def rvec_of(R: np.ndarray) -> np.ndarray:
    """Axis-angle vector (3,) of a rotation matrix."""
    return cv2.Rodrigues(np.asarray(R, dtype=np.float64))[0].ravel()


def rodrigues_many(rvecs: np.ndarray) -> np.ndarray:
    """Rotation matrices (F, 3, 3) of axis-angle vectors (F, 3) (Rodrigues' formula, vectorised)."""
    theta = np.linalg.norm(rvecs, axis=1)
    small = theta < 1e-12
    k = rvecs / np.where(small, 1.0, theta)[:, None]
    Kx = np.zeros((len(rvecs), 3, 3))
    Kx[:, 0, 1], Kx[:, 0, 2], Kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    Kx = Kx - Kx.transpose(0, 2, 1)
    s, c = np.sin(theta)[:, None, None], np.cos(theta)[:, None, None]
    R = np.eye(3)[None] + s * Kx + (1 - c) * (Kx @ Kx)
    # first order for tiny angles keeps finite differences smooth around zero
    Kr = np.zeros_like(Kx)
    Kr[:, 0, 1], Kr[:, 0, 2], Kr[:, 1, 2] = -rvecs[:, 2], rvecs[:, 1], -rvecs[:, 0]
    Kr = Kr - Kr.transpose(0, 2, 1)
    return np.where(small[:, None, None], np.eye(3)[None] + Kr, R)


def rotation_error_deg(R_est: np.ndarray, R_true: np.ndarray) -> float:
    """Angle (degrees) of ``R_est R_true^T``."""
    c = (np.trace(R_est @ R_true.T) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))
