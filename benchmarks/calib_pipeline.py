"""Time the whole calibration pipeline on the synthetic 4-camera rig against the plain OpenCV loop.

deepnotes: threaded detection (all cores) -> intrinsics with outlier rejection -> joint bundle adjustment.
plain, as in the notes, single process: per image findChessboardCorners + cornerSubPix (11x11) (with
``--board charuco``: ``aruco.CharucoDetector.detectBoard``, views with at least 6 corners) -> calibrateCamera
per camera -> stereoCalibrate (fixed intrinsics) from the reference to each camera (ChArUco: each frame on
the corner ids both cameras saw).
``--board charuco`` renders the partial-view rig: every camera sees 40-80% of a 12x9-square board in every
frame. Prints wall times, their ratio and both pipelines' errors against the ground truth.

    python benchmarks/calib_pipeline.py [--frames 40] [--size 480,640] [--board chessboard|charuco]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from deepnotes.calib.boards import charuco_detector, object_points
from deepnotes.calib.config import MIN_CHARUCO_CORNERS, load_config
from deepnotes.calib.experiments import GOALS, errors
from deepnotes.calib.frames import load_index
from deepnotes.calib.pipeline import load_rigs, step_detect, step_intrinsics, step_rig, step_split
from deepnotes.calib.synthetic import CHARUCO_BOARD, PARTIAL_DEPTH, synthetic_rig, write_dataset
from deepnotes.core.config import ConfigError, parse_hw


def _chessboard_views(index: dict, cfg) -> tuple[dict, tuple[int, int]]:
    """camera -> frame -> (ids, corners) of the notes' loop: default flags, a fixed 11x11 window."""
    b = cfg.board
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 30, 0.1)
    views: dict[str, dict] = {}
    size = None
    for cam, frames in index.items():
        views[cam] = {}
        for f in frames:
            gray = cv2.imread(f["path"], cv2.IMREAD_GRAYSCALE)
            size = (gray.shape[1], gray.shape[0])
            found, c = cv2.findChessboardCorners(gray, (b.cols, b.rows))
            if found:
                pts = cv2.cornerSubPix(gray, c, (11, 11), (-1, -1), crit)
                views[cam][f["frame"]] = (np.arange(len(pts)), pts.reshape(-1, 2))
    return views, size


def _charuco_views(index: dict, cfg) -> tuple[dict, tuple[int, int]]:
    """camera -> frame -> (ids, corners) from OpenCV's ChArUco detector, views of >= 6 corners."""
    detector = charuco_detector(cfg.board)
    views: dict[str, dict] = {}
    size = None
    for cam, frames in index.items():
        views[cam] = {}
        for f in frames:
            gray = cv2.imread(f["path"], cv2.IMREAD_GRAYSCALE)
            size = (gray.shape[1], gray.shape[0])
            corners, ids, _, _ = detector.detectBoard(gray)
            if ids is not None and len(ids) >= MIN_CHARUCO_CORNERS:
                views[cam][f["frame"]] = (ids.ravel(), corners.reshape(-1, 2))
    return views, size


def plain_opencv(index: dict, cfg) -> dict:
    """The plain loop: detection, calibrateCamera per camera, stereoCalibrate reference -> each camera."""
    views, size = (_charuco_views if cfg.board.charuco else _chessboard_views)(index, cfg)
    table = object_points(cfg.board).astype(np.float32)
    K, D, R, T = {}, {}, {}, {}
    for cam, vs in views.items():
        _, K[cam], D[cam], _, _ = cv2.calibrateCamera([table[i] for i, _ in vs.values()],
                                                      [p.astype(np.float32) for _, p in vs.values()], size,
                                                      None, None)
    ref = cfg.rigs[0].reference
    R[ref], T[ref] = np.eye(3), np.zeros(3)
    for cam in views:
        if cam == ref:
            continue
        obj, pa, pb = [], [], []
        for f in sorted(set(views[ref]) & set(views[cam])):
            (ia, a), (ib, b) = views[ref][f], views[cam][f]
            common, ja, jb = np.intersect1d(ia, ib, return_indices=True)
            if len(common) >= MIN_CHARUCO_CORNERS:
                obj.append(table[common])
                pa.append(a[ja].astype(np.float32))
                pb.append(b[jb].astype(np.float32))
        out = cv2.stereoCalibrate(obj, pa, pb, K[ref], D[ref], K[cam], D[cam], size,
                                  flags=cv2.CALIB_FIX_INTRINSIC)
        R[cam], T[cam] = out[5], out[6].ravel()
    return {"K": K, "R": R, "T": T}


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="480,640", help="H,W of each camera's image (one number: square)")
    ap.add_argument("--board", choices=("chessboard", "charuco"), default="chessboard",
                    help="charuco: the partial-view rig (every camera sees 40-80%% of the board)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="alternate the two pipelines this many times and keep each one's fastest run")
    ap.add_argument("--device", default="cpu", help="accepted for uniformity; calibration runs on the CPU")
    args = ap.parse_args()
    size = args.size
    if "x" in size:  # the former spelling, WxH: H,W is the one size syntax now
        print(f"warning: --size {size} (WxH) is deprecated; use --size H,W", file=sys.stderr)
        size = ",".join(reversed(size.split("x")))
    try:
        args.hw = parse_hw(size, "--size")
    except ConfigError as exc:
        ap.error(str(exc))
    return args


def _ours(cfg, out: Path) -> dict:
    """The deepnotes steps, timed: wall seconds per step and the process's CPU seconds."""
    times, cpu0 = {}, time.process_time()
    steps = (("detection", step_detect), ("intrinsics", step_intrinsics), ("rig adjustment", step_rig))
    for name, step in steps:
        t0 = time.perf_counter()
        step(cfg, out)
        times[name] = time.perf_counter() - t0
    res = load_rigs(cfg, out)["rig"]
    est = {"K": {c: r.K for c, r in res.intrinsics.items()}, "R": res.R, "T": res.T}
    return {"est": est, "wall": sum(times.values()), "cpu": time.process_time() - cpu0, "steps": times}


def _plain(index: dict, cfg) -> dict:
    t0, cpu0 = time.perf_counter(), time.process_time()
    est = plain_opencv(index, cfg)
    return {"est": est, "wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}


def main() -> None:
    args = _args()
    h, w = args.hw
    if args.board == "charuco":
        rig = synthetic_rig(4, args.frames, (w, h), seed=0, depth=PARTIAL_DEPTH, board=CHARUCO_BOARD,
                            visible=(0.4, 0.8))
    else:
        rig = synthetic_rig(4, args.frames, (w, h), seed=0)  # OpenCV's (width, height)
    plain, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(write_dataset(Path(tmp) / "data", rig, mosaic=True, ss=2))
        cfg.detect.overlays = False
        for k in range(max(1, args.repeat)):  # alternating, so both see the same (shared) machine
            out = Path(tmp) / f"out{k}"  # a fresh folder: no detection cache
            step_split(cfg, out)
            plain.append(_plain(load_index(out), cfg))
            ours.append(_ours(cfg, out))
    best_p, best_o = min(plain, key=lambda r: r["wall"]), min(ours, key=lambda r: r["wall"])
    print(f"board: {cfg.board.describe()}, {args.frames} frames, 4 cameras {w}x{h}, fastest of {len(plain)}")
    print(f"{'pipeline':<28}{'wall s':>9}{'CPU s':>8}{'focal %':>9}{'pp px':>8}{'rot deg':>9}{'trans %':>9}")
    for name, r in (("plain OpenCV (1 process)", best_p), ("deepnotes (detect+BA)", best_o)):
        e = errors(r["est"], rig)
        print(f"{name:<28}{r['wall']:>9.2f}{min(x['cpu'] for x in (plain if r is best_p else ours)):>8.2f}"
              f"{e['focal_pct']:>9.3f}{e['pp_px']:>8.2f}{e['rotation_deg']:>9.3f}{e['translation_pct']:>9.3f}")
    print("errors: mean over cameras; goals: " + ", ".join(f"{k} < {v}" for k, v in GOALS.items()))
    print("deepnotes " + ", ".join(f"{k} {v:.2f} s" for k, v in best_o["steps"].items()))
    cpu = min(r["cpu"] for r in ours) / min(r["cpu"] for r in plain)
    print(f"time ratio deepnotes/plain = {best_o['wall'] / best_p['wall']:.2f} (wall), {cpu:.2f} (CPU)")


if __name__ == "__main__":
    main()
