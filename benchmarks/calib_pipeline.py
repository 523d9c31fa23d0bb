"""Time the whole calibration pipeline on the synthetic 4-camera rig against the plain OpenCV loop.

deepnotes: threaded detection (all cores) -> intrinsics with outlier rejection -> joint bundle adjustment.
plain: a single-process loop of findChessboardCorners + cornerSubPix (11x11) -> calibrateCamera per camera
-> stereoCalibrate (fixed intrinsics) from the reference to each camera, as in the notes.
Prints wall times, their ratio and both pipelines' errors against the ground truth.

    python benchmarks/calib_pipeline.py [--frames 40] [--size 480,640] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from deepnotes.calib.camera_model import board_points
from deepnotes.calib.config import load_config
from deepnotes.calib.experiments import errors
from deepnotes.calib.frames import load_index
from deepnotes.calib.pipeline import load_rigs, step_detect, step_intrinsics, step_rig, step_split
from deepnotes.calib.synthetic import synthetic_rig, write_dataset
from deepnotes.core.config import ConfigError, parse_hw


def plain_opencv(index: dict, cfg) -> dict:
    b = cfg.board
    obj = board_points(b.cols, b.rows, b.square_size).astype(np.float32)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 30, 0.1)
    pts: dict[str, dict[str, np.ndarray]] = {}
    size = None
    for cam, frames in index.items():
        pts[cam] = {}
        for f in frames:
            gray = cv2.imread(f["path"], cv2.IMREAD_GRAYSCALE)
            size = (gray.shape[1], gray.shape[0])
            found, c = cv2.findChessboardCorners(gray, (b.cols, b.rows))
            if found:
                pts[cam][f["frame"]] = cv2.cornerSubPix(gray, c, (11, 11), (-1, -1), crit)
    K, D, R, T = {}, {}, {}, {}
    for cam, views in pts.items():
        _, K[cam], D[cam], _, _ = cv2.calibrateCamera([obj] * len(views), list(views.values()), size, None,
                                                      None)
    ref = cfg.rigs[0].reference
    R[ref], T[ref] = np.eye(3), np.zeros(3)
    for cam in pts:
        if cam == ref:
            continue
        shared = sorted(set(pts[ref]) & set(pts[cam]))
        out = cv2.stereoCalibrate([obj] * len(shared), [pts[ref][f] for f in shared],
                                  [pts[cam][f] for f in shared],
                                  K[ref], D[ref], K[cam], D[cam], size, flags=cv2.CALIB_FIX_INTRINSIC)
        R[cam], T[cam] = out[5], out[6].ravel()
    return {"K": K, "R": R, "T": T}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="480,640", help="H,W of each camera's image (one number: square)")
    ap.add_argument("--device", default="cpu", help="accepted for uniformity; calibration runs on the CPU")
    args = ap.parse_args()
    size = args.size
    if "x" in size:  # the former spelling, WxH: H,W is the one size syntax now
        print(f"warning: --size {size} (WxH) is deprecated; use --size H,W", file=sys.stderr)
        size = ",".join(reversed(size.split("x")))
    try:
        h, w = parse_hw(size, "--size")
    except ConfigError as exc:
        ap.error(str(exc))
    rig = synthetic_rig(4, args.frames, (w, h), seed=0)  # OpenCV's (width, height)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = write_dataset(Path(tmp) / "data", rig, mosaic=True, ss=2)
        cfg = load_config(cfg_path)
        cfg.detect.overlays = False
        out = Path(tmp) / "out"
        step_split(cfg, out)
        index = load_index(out)
        t0 = time.perf_counter()
        plain = plain_opencv(index, cfg)
        t_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        step_detect(cfg, out)
        t_detect = time.perf_counter() - t0
        step_intrinsics(cfg, out)
        step_rig(cfg, out)
        t_ours = time.perf_counter() - t0
        res = load_rigs(cfg, out)["rig"]
    ours = {"K": {c: r.K for c, r in res.intrinsics.items()}, "R": res.R, "T": res.T}
    print(f"{'pipeline':<28}{'wall s':>9}{'focal %':>9}{'pp px':>8}{'rot deg':>9}{'trans %':>9}")
    runs = (("plain OpenCV (1 process)", t_plain, plain), ("deepnotes (detect+BA)", t_ours, ours))
    for name, t, est in runs:
        e = errors(est, rig)
        print(f"{name:<28}{t:>9.2f}{e['focal_pct']:>9.3f}{e['pp_px']:>8.2f}{e['rotation_deg']:>9.3f}"
              f"{e['translation_pct']:>9.3f}")
    print(f"deepnotes detection alone: {t_detect:.2f} s; time ratio deepnotes/plain = {t_ours / t_plain:.2f}")


if __name__ == "__main__":
    main()
