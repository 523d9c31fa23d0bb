"""Outputs other tools read: ``calibration.yaml`` (OpenCV FileStorage) and a Kalibr camchain.

``calibration.yaml``: a sequence ``cameras`` (``name``, ``image_size`` (w, h), ``model``, ``K`` 3x3,
``dist`` 1xN, ``R`` 3x3, ``T`` 3x1 with X_cam = R X_ref + T, ``rig``, ``rms``) and a sequence ``stereo``
(``left``, ``right``, ``R``, ``T``, ``E``, ``F``, ``R1``, ``R2``, ``P1``, ``P2``, ``Q``, ``rms``,
``rectified_vertical_error``). Both files are written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import yaml

from deepnotes.calib.camera_model import distort, undistort_to_rays
from deepnotes.core.checkpoint import atomic_write_text

STEREO_MATS = ("R", "T", "E", "F", "R1", "R2", "P1", "P2", "Q")
log = logging.getLogger("deepnotes.calib")


def calibration_yaml(cameras: list[dict], stereo: list[dict]) -> str:
    """FileStorage YAML text. ``cameras``: dicts with the fields above; ``stereo``: likewise."""
    fs = cv2.FileStorage("calibration.yaml", cv2.FILE_STORAGE_WRITE | cv2.FILE_STORAGE_MEMORY)
    fs.startWriteStruct("cameras", cv2.FileNode_SEQ)
    for c in cameras:
        fs.startWriteStruct("", cv2.FileNode_MAP)
        fs.write("name", c["name"])
        fs.write("image_size", np.array([c["image_size"]], dtype=np.int32))
        fs.write("model", c["model"])
        fs.write("K", np.asarray(c["K"], float).reshape(3, 3))
        fs.write("dist", np.asarray(c["dist"], float).reshape(1, -1))
        fs.write("R", np.asarray(c["R"], float).reshape(3, 3))
        fs.write("T", np.asarray(c["T"], float).reshape(3, 1))
        fs.write("rig", c.get("rig", ""))
        fs.write("rms", float(c["rms"]))
        fs.endWriteStruct()
    fs.endWriteStruct()
    fs.startWriteStruct("stereo", cv2.FileNode_SEQ)
    for s in stereo:
        fs.startWriteStruct("", cv2.FileNode_MAP)
        fs.write("left", s["left"])
        fs.write("right", s["right"])
        for k in STEREO_MATS:
            fs.write(k, np.asarray(s[k], float))
        fs.write("rms", float(s["rms"]))
        fs.write("rectified_vertical_error", float(s["rectified_vertical_error"]))
        fs.endWriteStruct()
    fs.endWriteStruct()
    return fs.releaseAndGetString()


def write_calibration(path: str | Path, cameras: list[dict], stereo: list[dict]) -> Path:
    return atomic_write_text(path, calibration_yaml(cameras, stereo))


def read_calibration(path: str | Path) -> dict:
    """Read ``calibration.yaml`` back with ``cv2.FileStorage`` into plain dicts of numpy arrays."""
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    if not fs.isOpened():
        raise ValueError(f"{path}: cannot be opened as an OpenCV FileStorage file")
    out: dict = {"cameras": [], "stereo": []}
    node = fs.getNode("cameras")
    for i in range(node.size()):
        n = node.at(i)
        out["cameras"].append({
            "name": n.getNode("name").string(), "model": n.getNode("model").string(),
            "image_size": tuple(int(v) for v in n.getNode("image_size").mat().ravel()),
            "K": n.getNode("K").mat(), "dist": n.getNode("dist").mat().ravel(), "R": n.getNode("R").mat(),
            "T": n.getNode("T").mat().ravel(), "rig": n.getNode("rig").string(),
            "rms": n.getNode("rms").real(),
        })
    node = fs.getNode("stereo")
    for i in range(node.size()):
        n = node.at(i)
        entry = {"left": n.getNode("left").string(), "right": n.getNode("right").string(),
                 "rms": n.getNode("rms").real(),
                 "rectified_vertical_error": n.getNode("rectified_vertical_error").real()}
        entry.update({k: n.getNode(k).mat() for k in STEREO_MATS})
        out["stereo"].append(entry)
    fs.release()
    return out


def _grid(image_size: tuple[int, int], n: int = 24) -> np.ndarray:
    """An n x n grid of pixels over the image, (n*n, 2): where a camera without corners is refitted."""
    w, h = image_size
    u, v = np.meshgrid(np.linspace(0, w - 1, n), np.linspace(0, h - 1, n))
    return np.stack([u.ravel(), v.ravel()], axis=1)


def radtan_refit(K: np.ndarray, dist: np.ndarray, model: str,
                 pixels: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """The 4-coefficient radtan model (k1 k2 p1 p2) closest, in pixels, to ``model``'s ``dist`` over
    ``pixels`` (N, 2; the camera's detected corners), K unchanged.

    Each pixel is undistorted with the full model to its ray (x, y); radtan's distorted point is linear in
    (k1, k2, p1, p2) given the ray, so the fit is one linear least squares in pixel units. Returns the
    coefficients and the pixel error they leave against the full model (``rms_px``, ``max_px``) beside the
    error of merely dropping the extra coefficients (``dropped_rms_px``, ``dropped_max_px``).
    """
    rays = undistort_to_rays(pixels, K, dist, model)
    x, y = rays[:, 0], rays[:, 1]
    r2 = x * x + y * y
    target = (pixels - K[:2, 2]) / np.diag(K)[:2]  # distorted normalised coordinates
    fx, fy = K[0, 0], K[1, 1]
    A = np.concatenate([fx * np.stack([x * r2, x * r2 * r2, 2 * x * y, r2 + 2 * x * x], axis=1),
                        fy * np.stack([y * r2, y * r2 * r2, r2 + 2 * y * y, 2 * x * y], axis=1)])
    b = np.concatenate([fx * (target[:, 0] - x), fy * (target[:, 1] - y)])
    coeffs = np.linalg.lstsq(A, b, rcond=None)[0]

    def error(d4: np.ndarray) -> np.ndarray:
        xd = distort(rays, np.r_[d4, 0.0], "pinhole")
        return np.linalg.norm(xd * np.diag(K)[:2] + K[:2, 2] - pixels, axis=1)

    e, e_drop = error(coeffs), error(np.asarray(dist, float)[:4])
    return coeffs, {"rms_px": float(np.sqrt(np.mean(e**2))), "max_px": float(e.max()),
                    "dropped_rms_px": float(np.sqrt(np.mean(e_drop**2))),
                    "dropped_max_px": float(e_drop.max())}


def kalibr_distortion(c: dict) -> tuple[str, list[float], str | None]:
    """Kalibr's distortion model and coefficients of one camera, and a note when they had to be refitted.

    Fisheye maps to ``equidistant`` (the same 4 coefficients). Kalibr's ``radtan`` has k1 k2 p1 p2 only: a
    pinhole camera with k3 != 0 (or a rational one with any of k3..k6) is refitted on its corners
    (``c["points"]``, (N, 2); an image grid without them) by :func:`radtan_refit`, not truncated.
    """
    dist = np.asarray(c["dist"], float).ravel()
    if c["model"] == "fisheye":
        return "equidistant", [float(v) for v in dist[:4]], None
    if not np.any(dist[4:]):
        return "radtan", [float(v) for v in dist[:4]], None
    points = c.get("points")
    points = _grid(c["image_size"]) if points is None or len(points) == 0 else np.asarray(points, float)
    coeffs, e = radtan_refit(np.asarray(c["K"], float), dist, c["model"], points)
    extra = "k3" if c["model"] == "pinhole" else "k3..k6"
    values = ", ".join(f"{v:.4g}" for v in dist[4:])
    note = (f"camchain.yaml: camera {c['name']}: Kalibr's radtan has no {extra} ({values}); k1 k2 p1 p2 "
            f"refitted on {len(points)} points: {e['rms_px']:.3f} px RMS, {e['max_px']:.3f} px max from the "
            f"{len(dist)}-coefficient model (dropping {extra} alone: {e['dropped_rms_px']:.3f} px RMS, "
            f"{e['dropped_max_px']:.3f} px max); calibration.yaml keeps the full model")
    return "radtan", [float(v) for v in coeffs], note


def kalibr_camchain(cameras: list[dict], notes: list[str] | None = None) -> str:
    """Kalibr ``camchain.yaml``: ``cam0..camN`` with intrinsics, distortion and ``T_cn_cnm1`` (4x4).

    Distortion: :func:`kalibr_distortion` (radtan refitted when the camera's model has more than k1 k2 p1
    p2; each refit's note is appended to ``notes``).

    ``T_cn_cnm1`` is written only when both cameras belong to the same rig (``c["rig"]``): poses of other
    rigs are in another frame, and a camera in no rig has no known pose (it was written as the identity,
    which says the two cameras sit at the same spot).
    """
    chain = {}
    prev, prev_rig = None, None
    for i, c in enumerate(cameras):
        K = np.asarray(c["K"], float)
        model, coeffs, note = kalibr_distortion(c)
        if note is not None and notes is not None:
            notes.append(note)
        entry = {
            "camera_model": "pinhole",
            "intrinsics": [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])],
            "distortion_model": model,
            "distortion_coeffs": coeffs,
            "resolution": [int(v) for v in c["image_size"]],
            "rostopic": f"/{c['name']}/image_raw",
        }
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = np.asarray(c["R"]), np.asarray(c["T"]).ravel()
        rig = c.get("rig") or None
        if prev is not None and rig is not None and rig == prev_rig:
            entry["T_cn_cnm1"] = (T @ np.linalg.inv(prev)).tolist()  # previous camera -> this camera
        prev, prev_rig = T, rig
        chain[f"cam{i}"] = entry
    return yaml.safe_dump(chain, sort_keys=False, default_flow_style=None)


def write_kalibr(path: str | Path, cameras: list[dict]) -> tuple[Path, list[str]]:
    """Write the camchain; returns its path and the refit notes (also logged as warnings)."""
    notes: list[str] = []
    text = kalibr_camchain(cameras, notes)
    for note in notes:
        log.warning(note)
    return atomic_write_text(path, text), notes
