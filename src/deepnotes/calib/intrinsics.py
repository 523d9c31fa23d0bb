"""Per-camera intrinsics (pinhole, rational or fisheye) with iterative rejection of outlier views.

A view whose RMS reprojection error is far above the others (a mis-detected corner, motion blur, a board
seen nearly edge-on) pulls every parameter. We calibrate, drop views whose RMS exceeds
``median + factor * 1.4826 * MAD`` (and 1.5x the median), and recalibrate, a few rounds at most, never
going below ``min_views``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from deepnotes.calib.camera_model import project, rodrigues
from deepnotes.calib.config import CalibError

PINHOLE_NAMES = ["fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"]
CRITERIA = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-10)


@dataclass
class Views:
    """The usable detections of one camera: frame ids, object points (V of (n, 3)), image points (V of
    (n, 2)) and, for partial views (ChArUco), each view's corner ids (V of (n,)); ``ids=None``: every view
    holds the whole board in order."""

    frames: list[str]
    obj: list[np.ndarray]
    img: list[np.ndarray]
    image_size: tuple[int, int]  # (w, h)
    ids: list[np.ndarray] | None = None

    def view_ids(self) -> list[np.ndarray]:
        """Corner ids of every view (V of (n,))."""
        if self.ids is not None:
            return [np.asarray(i, np.intp) for i in self.ids]
        return [np.arange(len(o)) for o in self.obj]


@dataclass
class IntrinsicsResult:
    name: str
    model: str
    image_size: tuple[int, int]
    K: np.ndarray  # (3, 3)
    dist: np.ndarray  # (n,)
    rms: float
    per_view: dict[str, float]  # frame -> RMS px (kept views)
    rejected: dict[str, float] = field(default_factory=dict)  # frame -> RMS px when rejected
    std: dict[str, float] = field(default_factory=dict)  # parameter -> standard deviation
    poses: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # frame -> board->cam r, t

    def to_json(self) -> dict:
        return {
            "name": self.name, "model": self.model, "image_size": list(self.image_size), "K": self.K.tolist(),
            "dist": self.dist.tolist(), "rms": self.rms, "per_view": self.per_view, "rejected": self.rejected,
            "std": self.std, "poses": {f: [r.tolist(), t.tolist()] for f, (r, t) in self.poses.items()},
        }

    @classmethod
    def from_json(cls, d: dict) -> IntrinsicsResult:
        return cls(
            d["name"], d["model"], tuple(d["image_size"]), np.array(d["K"]), np.array(d["dist"]), d["rms"],
            d["per_view"], d["rejected"], d["std"],
            {f: (np.array(r), np.array(t)) for f, (r, t) in d["poses"].items()},
        )


def view_errors(obj: list[np.ndarray], img: list[np.ndarray], K: np.ndarray, dist: np.ndarray, model: str,
                rvecs: list, tvecs: list) -> np.ndarray:
    """RMS reprojection error (px) of every view, (V,)."""
    errs = []
    for o, i, r, t in zip(obj, img, rvecs, tvecs, strict=False):
        pc = o @ rodrigues(r).T + np.asarray(t).reshape(1, 3)
        errs.append(np.sqrt(np.mean(np.sum((project(pc, K, dist, model) - i) ** 2, axis=1))))
    return np.array(errs)


def _calibrate_once(views: Views, model: str, flags: int = 0,
                    guess: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, list,
                                                                                list, dict]:
    obj = [o.astype(np.float32) for o in views.obj]
    img = [i.astype(np.float32).reshape(-1, 1, 2) for i in views.img]
    if model == "fisheye":
        fflags = cv2.CALIB_RECOMPUTE_EXTRINSIC | cv2.CALIB_FIX_SKEW
        _, K, D, rvecs, tvecs = cv2.fisheye.calibrate(
            [o.reshape(1, -1, 3).astype(np.float64) for o in obj],
            [i.reshape(1, -1, 2).astype(np.float64) for i in img],
            views.image_size, np.eye(3), np.zeros((4, 1)), flags=fflags, criteria=CRITERIA,
        )
        return K, D.ravel(), rvecs, tvecs, {}
    if model == "pinhole_rational":
        flags |= cv2.CALIB_RATIONAL_MODEL
    K0, D0 = (None, None) if guess is None else (guess[0].copy(), guess[1].reshape(1, -1).copy())
    if guess is not None:  # a later rejection round starts from the last one's intrinsics: fewer iterations
        flags |= cv2.CALIB_USE_INTRINSIC_GUESS
    out = cv2.calibrateCameraExtended(obj, img, views.image_size, K0, D0, flags=flags, criteria=CRITERIA)
    _, K, D, rvecs, tvecs, std_intr = out[:6]
    n = 12 if model == "pinhole_rational" else 9
    D = D.ravel()[: n - 4]
    std = {name: float(s) for name, s in zip(PINHOLE_NAMES[:n], std_intr.ravel()[:n], strict=False)}
    return K, D, rvecs, tvecs, std


def calibrate_intrinsics(
    name: str, views: Views, model: str = "pinhole", min_views: int = 5, outlier_factor: float = 3.0,
    max_rounds: int = 3,
) -> IntrinsicsResult:
    """Calibrate one camera from its views, rejecting outlier views (see the module doc)."""
    if len(views.frames) < min_views:
        raise CalibError(f"camera {name}: only {len(views.frames)} usable views, need at least {min_views}")
    keep = list(range(len(views.frames)))
    rejected: dict[str, float] = {}
    guess = None
    for round_ in range(max_rounds + 1):
        sub = Views([views.frames[i] for i in keep], [views.obj[i] for i in keep],
                    [views.img[i] for i in keep], views.image_size)  # ids play no part in intrinsics
        K, D, rvecs, tvecs, std = _calibrate_once(sub, model, guess=guess)
        guess = None if model == "fisheye" else (K, D)
        errs = view_errors(sub.obj, sub.img, K, D, model, rvecs, tvecs)
        if round_ == max_rounds:
            break
        med = float(np.median(errs))
        mad = float(np.median(np.abs(errs - med)))
        thresh = max(med + outlier_factor * 1.4826 * mad, 1.5 * med)
        bad = [j for j in np.argsort(-errs) if errs[j] > thresh]
        bad = bad[: max(0, len(keep) - min_views)]
        if not bad:
            break
        for j in bad:
            rejected[sub.frames[j]] = float(errs[j])
        keep = [k for j, k in enumerate(keep) if j not in set(bad)]
    rms = float(np.sqrt(np.mean(errs ** 2)))
    poses = {f: (np.asarray(r).ravel(), np.asarray(t).ravel())
             for f, r, t in zip(sub.frames, rvecs, tvecs, strict=False)}
    return IntrinsicsResult(name, model, views.image_size, K, D, rms,
                            {f: float(e) for f, e in zip(sub.frames, errs, strict=False)}, rejected, std,
                            poses)
