"""Outputs other tools read: ``calibration.yaml`` (OpenCV FileStorage) and a Kalibr camchain.

``calibration.yaml``: a sequence ``cameras`` (``name``, ``image_size`` (w, h), ``model``, ``K`` 3x3,
``dist`` 1xN, ``R`` 3x3, ``T`` 3x1 with X_cam = R X_ref + T, ``rig``, ``rms``) and a sequence ``stereo``
(``left``, ``right``, ``R``, ``T``, ``E``, ``F``, ``R1``, ``R2``, ``P1``, ``P2``, ``Q``, ``rms``,
``rectified_vertical_error``). Both files are written atomically.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from deepnotes.core.checkpoint import atomic_write_text

STEREO_MATS = ("R", "T", "E", "F", "R1", "R2", "P1", "P2", "Q")


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


def kalibr_camchain(cameras: list[dict]) -> str:
    """Kalibr ``camchain.yaml``: ``cam0..camN`` with intrinsics, distortion and ``T_cn_cnm1`` (4x4).

    Kalibr's pinhole model is ``radtan`` with 4 coefficients (k1 k2 p1 p2); a nonzero k3 cannot be
    expressed there and is dropped (the value is kept in ``calibration.yaml``). Fisheye maps to
    ``equidistant``. Rational models have no Kalibr equivalent and are exported as radtan, too.

    ``T_cn_cnm1`` is written only when both cameras belong to the same rig (``c["rig"]``): poses of other
    rigs are in another frame, and a camera in no rig has no known pose (it was written as the identity,
    which says the two cameras sit at the same spot).
    """
    chain = {}
    prev, prev_rig = None, None
    for i, c in enumerate(cameras):
        K = np.asarray(c["K"], float)
        dist = np.asarray(c["dist"], float).ravel()
        fisheye = c["model"] == "fisheye"
        entry = {
            "camera_model": "pinhole",
            "intrinsics": [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])],
            "distortion_model": "equidistant" if fisheye else "radtan",
            "distortion_coeffs": [float(v) for v in dist[:4]],
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


def write_kalibr(path: str | Path, cameras: list[dict]) -> Path:
    return atomic_write_text(path, kalibr_camchain(cameras))
