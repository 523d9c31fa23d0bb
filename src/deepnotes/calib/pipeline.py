"""The steps, each runnable alone, each leaving its result in the output folder for the next one.

``split`` -> ``frames/index.json``; ``detect`` -> ``detections/<camera>.json`` (cache + results) and
``detections/summary.json``; ``intrinsics`` -> ``intrinsics.json``; ``rig`` -> ``rig_<name>.json``;
``stereo`` -> ``stereo.json`` and ``stereo_<left>_<right>.png``; ``export`` -> ``calibration.yaml``,
``camchain.yaml``, ``report.html``, ``views.json``. ``run`` does them all.

A view (one camera's image of one frame) counts when its board was detected and, for a camera in no rig,
the intrinsics step did not reject it as an outlier; a rig's joint adjustment takes every detected view
(its own robust loss and per-corner outlier test judge them: on a 12-pose rig, leaving out the views the
per-camera step rejected raised the mean principal-point error from 1.2 to 2.8 px), so a rig camera loses
a view only when the adjustment drops all its corners. :func:`view_summary` says, per camera, how many
views counted and why each other one did not (``views.json``, the report, and what ``calib run`` prints).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from deepnotes.calib.boards import object_points
from deepnotes.calib.config import MIN_CHARUCO_CORNERS, CalibConfig, CalibError
from deepnotes.calib.detect import Detection, detect_camera
from deepnotes.calib.frames import load_index, read_gray, split_sources
from deepnotes.calib.intrinsics import IntrinsicsResult, Views, calibrate_intrinsics
from deepnotes.calib.io_yaml import write_calibration, write_kalibr
from deepnotes.calib.report import write_report
from deepnotes.calib.rig import RigResult, calibrate_rig, observations_from_views
from deepnotes.calib.stereo import rectified_preview, stereo_calibrate, stereo_entry
from deepnotes.core.checkpoint import atomic_write_json


def step_split(cfg: CalibConfig, out: Path) -> dict:
    return split_sources(cfg, out)


def step_detect(cfg: CalibConfig, out: Path) -> dict[str, list[Detection]]:
    """Detect every camera's frames; writes the per-camera caches and a summary of skipped views."""
    index = load_index(out)
    b, opts = cfg.board, cfg.detect
    results, summary = {}, {}
    for cam in cfg.cameras:
        dets = detect_camera(
            index.get(cam.name, []), b.cols, b.rows, opts.detector, opts.subpix_window,
            cfg.frames.blur_threshold,
            cache=out / "detections" / f"{cam.name}.json",
            overlay_dir=out / "overlays" / cam.name if opts.overlays else None, workers=opts.workers,
            desc=f"detect {cam.name}", board=b, search=opts.search,
        )
        results[cam.name] = dets
        summary[cam.name] = {
            "found": sum(d.found for d in dets), "total": len(dets),
            "skipped": {d.frame: d.reason for d in dets if not d.found},
        }
    atomic_write_json(out / "detections" / "summary.json", summary)
    return results


def _load_detections(cfg: CalibConfig, out: Path) -> dict[str, list[Detection]]:
    return step_detect(cfg, out)  # served from the cache when nothing changed


def usable_views(cfg: CalibConfig, name: str, dets: list[Detection]) -> Views:
    """The found detections of a camera as :class:`Views`; clear errors for mixed sizes or too few views."""
    b = cfg.board
    ok = [d for d in dets if d.found]
    sizes = {tuple(d.image_size) for d in dets if d.image_size}
    if len(sizes) > 1:
        examples = {s: next(d.path for d in dets if d.image_size and tuple(d.image_size) == s) for s in sizes}
        raise CalibError(f"camera {name}: mixed image sizes {examples}; every image of a camera must share "
                         "one size")
    if len(ok) < cfg.intrinsics.min_views:
        counts = ", ".join([f"{Path(d.path).name}: {d.reason}" for d in dets if not d.found][:8])
        counted = "squares, not inner corners" if b.charuco else "inner corners"
        raise CalibError(
            f"camera {name}: only {len(ok)} of {len(dets)} images have a usable {b.describe()} board "
            f"(need {cfg.intrinsics.min_views}). Check board cols/rows ({counted}). Skipped: {counts}"
        )
    table = object_points(b)
    ids = [d.corner_ids() for d in ok]
    return Views([d.frame for d in ok], [table[i] for i in ids], [np.asarray(d.corners) for d in ok],
                 tuple(sizes.pop()), ids)


def step_intrinsics(cfg: CalibConfig, out: Path) -> dict[str, IntrinsicsResult]:
    """Every camera's intrinsics, cameras in parallel threads (``detect.workers`` of them; OpenCV releases
    the GIL while it calibrates, and the cameras are independent).

    A camera in a rig is calibrated once, without rejection rounds: the rig's joint adjustment takes every
    view and judges them itself (module doc), so its intrinsics here only start that adjustment; the
    rounds cost 2-4 calibrations per camera that nothing used."""
    dets = _load_detections(cfg, out)
    views = {cam.name: usable_views(cfg, cam.name, dets[cam.name]) for cam in cfg.cameras}
    o = cfg.intrinsics
    in_rig = {c for rig in cfg.rigs for c in rig.cameras}

    def one(cam) -> IntrinsicsResult:
        rounds = 0 if cam.name in in_rig else o.max_rejection_rounds
        return calibrate_intrinsics(cam.name, views[cam.name], cam.model, o.min_views, o.outlier_factor,
                                    rounds)

    workers = (os.cpu_count() or 1) if cfg.detect.workers is None else cfg.detect.workers
    if workers > 1 and len(cfg.cameras) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(cfg.cameras))) as pool:
            results = list(pool.map(one, cfg.cameras))
    else:
        results = [one(cam) for cam in cfg.cameras]
    res = {cam.name: r for cam, r in zip(cfg.cameras, results, strict=True)}
    atomic_write_json(out / "intrinsics.json", {c: r.to_json() for c, r in res.items()})
    return res


def load_intrinsics(out: Path) -> dict[str, IntrinsicsResult]:
    path = out / "intrinsics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `deepnotes calib intrinsics CONFIG --out {out}` "
                                "first")
    return {c: IntrinsicsResult.from_json(d) for c, d in json.loads(path.read_text()).items()}


def step_rig(cfg: CalibConfig, out: Path) -> dict[str, RigResult]:
    """Each rig's joint adjustment, on every detected view of its cameras (see the module doc)."""
    dets = _load_detections(cfg, out)
    intr = load_intrinsics(out)
    results = {}
    for rig in cfg.rigs:
        views = {c: usable_views(cfg, c, dets[c]) for c in rig.cameras}
        obs = observations_from_views(rig.cameras, views, object_points(cfg.board))
        r = calibrate_rig(rig.name, obs, rig.reference, {c: intr[c] for c in rig.cameras}, cfg.rig.loss,
                          cfg.rig.loss_scale, cfg.rig.outlier_px)
        atomic_write_json(out / f"rig_{rig.name}.json", r.to_json())
        results[rig.name] = r
    return results


def load_rigs(cfg: CalibConfig, out: Path) -> dict[str, RigResult]:
    res = {}
    for rig in cfg.rigs:
        path = out / f"rig_{rig.name}.json"
        if path.is_file():
            res[rig.name] = RigResult.from_json(json.loads(path.read_text()))
    return res


def shared_corners(found_l: dict[str, Detection], found_r: dict[str, Detection],
                   table: np.ndarray) -> tuple[list[str], list, list, list]:
    """Frames both cameras saw, paired by corner id: (frames, board points, left pixels, right pixels), each
    view keeping the ids both sides detected (at least ``MIN_CHARUCO_CORNERS``)."""
    frames, obj, pl, pr = [], [], [], []
    for f in sorted(set(found_l) & set(found_r)):
        ids_l, ids_r = found_l[f].corner_ids(), found_r[f].corner_ids()
        common, il, ir = np.intersect1d(ids_l, ids_r, assume_unique=True, return_indices=True)
        if len(common) < MIN_CHARUCO_CORNERS:
            continue
        frames.append(f)
        obj.append(table[common])
        pl.append(np.asarray(found_l[f].corners)[il])
        pr.append(np.asarray(found_r[f].corners)[ir])
    return frames, obj, pl, pr


def step_stereo(cfg: CalibConfig, out: Path) -> list[dict]:
    """Each configured pair: extrinsics (from a rig holding both cameras, else stereoCalibrate) and
    rectification."""
    dets = _load_detections(cfg, out)
    intr = load_intrinsics(out)
    rigs = load_rigs(cfg, out)
    entries = []
    for pair in cfg.stereo:
        found_l = {d.frame: d for d in dets[pair.left] if d.found}
        found_r = {d.frame: d for d in dets[pair.right] if d.found}
        shared, obj, pl, pr = shared_corners(found_l, found_r, object_points(cfg.board))
        if not shared:
            raise CalibError(f"stereo {pair.left}-{pair.right}: no frame shows {MIN_CHARUCO_CORNERS} or more "
                             "of the same board corners to both cameras")
        rig = next((r for r in rigs.values() if pair.left in r.cameras and pair.right in r.cameras), None)
        if rig is not None:
            left, right = rig.intrinsics[pair.left], rig.intrinsics[pair.right]
            R = rig.R[pair.right] @ rig.R[pair.left].T
            T = rig.T[pair.right].ravel() - R @ rig.T[pair.left].ravel()
            rms = float(np.sqrt((left.rms**2 + right.rms**2) / 2))
        else:
            left, right = intr[pair.left], intr[pair.right]
            R, T, rms = stereo_calibrate(left, right, obj, pl, pr)
        entry = stereo_entry(left, right, R, T, rms, pl, pr)
        rectified_preview(out / f"stereo_{pair.left}_{pair.right}.png", left, right, entry,
                          read_gray(Path(found_l[shared[0]].path)), read_gray(Path(found_r[shared[0]].path)))
        entries.append(entry)
    atomic_write_json(out / "stereo.json", [{k: (np.asarray(v).tolist() if not isinstance(v, str) else v)
                                              for k, v in e.items()} for e in entries])
    return entries


def _outlier_reasons(cam: str, intr: dict[str, IntrinsicsResult], rigs: dict[str, RigResult],
                     found: list[str]) -> dict[str, str]:
    """frame -> why a detected view of ``cam`` was rejected as an outlier by the step whose result counts:
    the joint adjustment of its rig (every corner dropped), or else the intrinsics step (view RMS)."""
    rig = next((r for r in rigs.values() if cam in r.cameras), None)
    if rig is not None:
        kept = rig.intrinsics[cam].per_view
        return {f: f"rejected as outlier (rig {rig.name}: all its corners above the adjustment's outlier "
                   "threshold)" for f in found if f not in kept}
    rejected = intr[cam].rejected if cam in intr else {}
    return {f: f"rejected as outlier (RMS {e:.2f} px, far above the camera's other views)"
            for f, e in rejected.items()}


def view_summary(cfg: CalibConfig, dets: dict[str, list[Detection]], intr: dict[str, IntrinsicsResult],
                 rigs: dict[str, RigResult] | None = None) -> dict[str, dict]:
    """Per camera: views used, views in all, and every skipped view's file and reason
    ({camera: {"used", "total", "skipped": [{"frame", "file", "reason"}]}}). Reasons start with their kind:
    unreadable, blank, blurred, no board (detection), or rejected as outlier (the rig's adjustment for a
    camera in a rig, else the intrinsics step)."""
    summary = {}
    for cam in cfg.cameras:
        camera_dets = dets.get(cam.name, [])
        outliers = _outlier_reasons(cam.name, intr, rigs or {}, [d.frame for d in camera_dets if d.found])
        skipped = []
        for d in camera_dets:
            if not d.found:
                reason = d.reason
            elif d.frame in outliers:
                reason = outliers[d.frame]
            else:
                continue
            skipped.append({"frame": d.frame, "file": Path(d.path).name, "reason": reason})
        summary[cam.name] = {"used": len(camera_dets) - len(skipped), "total": len(camera_dets),
                             "skipped": skipped}
    return summary


def summary_lines(summary: dict[str, dict]) -> list[str]:
    """What ``calib run`` prints: ``cam0: 38/40 views used`` and one indented line per skipped view."""
    lines = []
    for cam, s in summary.items():
        lines.append(f"{cam}: {s['used']}/{s['total']} views used")
        lines.extend(f"  skipped {v['file']}: {v['reason']}" for v in s["skipped"])
    return lines


def step_export(cfg: CalibConfig, out: Path) -> Path:
    """Write calibration.yaml, camchain.yaml, report.html and views.json from the steps' results."""
    intr = load_intrinsics(out)
    rigs = load_rigs(cfg, out)
    stereo = json.loads((out / "stereo.json").read_text()) if (out / "stereo.json").is_file() else []
    dets = _load_detections(cfg, out)
    cams = []
    for cam in cfg.cameras:
        rig = next((r for r in rigs.values() if cam.name in r.cameras), None)
        src = rig.intrinsics[cam.name] if rig else intr[cam.name]
        cams.append({
            "name": cam.name, "image_size": list(src.image_size), "model": cam.model, "K": src.K,
            "dist": src.dist,
            "R": rig.R[cam.name] if rig else np.eye(3), "T": rig.T[cam.name] if rig else np.zeros(3),
            "rig": rig.name if rig else "", "rms": src.rms,
            "points": np.concatenate([np.asarray(d.corners) for d in dets[cam.name] if d.found] or
                                     [np.zeros((0, 2))]),
        })
    path = write_calibration(out / "calibration.yaml", cams, stereo)
    _, notes = write_kalibr(out / "camchain.yaml", cams)
    summary = view_summary(cfg, dets, intr, rigs)
    atomic_write_json(out / "views.json", summary)
    report_cams = [
        {"name": c.name, "rms": intr[c.name].rms, "per_view": intr[c.name].per_view,
         "rejected": intr[c.name].rejected,
         "corners": [np.asarray(d.corners) for d in dets[c.name] if d.found],
         "image_size": intr[c.name].image_size, "skipped": summary[c.name]["skipped"],
         "used": summary[c.name]["used"], "total": summary[c.name]["total"],
         "example": _richest(dets[c.name], {s["frame"] for s in summary[c.name]["skipped"]})}
        for c in cfg.cameras
    ]
    rig_plots = [(r.name, r.R, r.T, r.board_poses) for r in rigs.values()]
    write_report(out / "report.html", report_cams, rig_plots, stereo, notes)
    return path


def _richest(dets: list[Detection], skipped: set[str]) -> Detection | None:
    """The used view with the most corners (the report draws it with its corner ids)."""
    used = [d for d in dets if d.found and d.frame not in skipped]
    return max(used, key=lambda d: len(d.corners), default=None)


def run_all(cfg: CalibConfig, out: Path) -> Path:
    """Every step in order; returns the path of ``calibration.yaml``."""
    out = Path(out)
    step_split(cfg, out)
    step_detect(cfg, out)
    step_intrinsics(cfg, out)
    if cfg.rigs:
        step_rig(cfg, out)
    if cfg.stereo:
        step_stereo(cfg, out)
    return step_export(cfg, out)
