"""The steps, each runnable alone, each leaving its result in the output folder for the next one.

``split`` -> ``frames/index.json``; ``detect`` -> ``detections/<camera>.json`` (cache + results) and
``detections/summary.json``; ``intrinsics`` -> ``intrinsics.json``; ``rig`` -> ``rig_<name>.json``;
``stereo`` -> ``stereo.json`` and ``stereo_<left>_<right>.png``; ``export`` -> ``calibration.yaml``,
``camchain.yaml``, ``report.html``. ``run`` does them all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepnotes.calib.camera_model import board_points
from deepnotes.calib.config import CalibConfig, CalibError
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
            desc=f"detect {cam.name}",
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
        raise CalibError(
            f"camera {name}: only {len(ok)} of {len(dets)} images have a usable {b.cols}x{b.rows} board "
            f"(need {cfg.intrinsics.min_views}). Check board cols/rows (inner corners). Skipped: {counts}"
        )
    obj = board_points(b.cols, b.rows, b.square_size)
    corners = [np.asarray(d.corners) for d in ok]
    return Views([d.frame for d in ok], [obj] * len(ok), corners, tuple(sizes.pop()))


def step_intrinsics(cfg: CalibConfig, out: Path) -> dict[str, IntrinsicsResult]:
    dets = _load_detections(cfg, out)
    res = {}
    for cam in cfg.cameras:
        views = usable_views(cfg, cam.name, dets[cam.name])
        o = cfg.intrinsics
        res[cam.name] = calibrate_intrinsics(cam.name, views, cam.model, o.min_views, o.outlier_factor,
                                             o.max_rejection_rounds)
    atomic_write_json(out / "intrinsics.json", {c: r.to_json() for c, r in res.items()})
    return res


def load_intrinsics(out: Path) -> dict[str, IntrinsicsResult]:
    path = out / "intrinsics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `deepnotes calib intrinsics CONFIG --out {out}` "
                                "first")
    return {c: IntrinsicsResult.from_json(d) for c, d in json.loads(path.read_text()).items()}


def step_rig(cfg: CalibConfig, out: Path) -> dict[str, RigResult]:
    dets = _load_detections(cfg, out)
    intr = load_intrinsics(out)
    b = cfg.board
    results = {}
    for rig in cfg.rigs:
        views = {c: usable_views(cfg, c, dets[c]) for c in rig.cameras}
        obs = observations_from_views(rig.cameras, views, b.cols, b.rows, b.square_size)
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


def step_stereo(cfg: CalibConfig, out: Path) -> list[dict]:
    """Each configured pair: extrinsics (from a rig holding both cameras, else stereoCalibrate) and
    rectification."""
    dets = _load_detections(cfg, out)
    intr = load_intrinsics(out)
    rigs = load_rigs(cfg, out)
    b = cfg.board
    entries = []
    for pair in cfg.stereo:
        found_l = {d.frame: d for d in dets[pair.left] if d.found}
        found_r = {d.frame: d for d in dets[pair.right] if d.found}
        shared = sorted(set(found_l) & set(found_r))
        if not shared:
            raise CalibError(f"stereo {pair.left}-{pair.right}: no frame shows the board to both cameras")
        pl = [np.asarray(found_l[f].corners) for f in shared]
        pr = [np.asarray(found_r[f].corners) for f in shared]
        rig = next((r for r in rigs.values() if pair.left in r.cameras and pair.right in r.cameras), None)
        if rig is not None:
            left, right = rig.intrinsics[pair.left], rig.intrinsics[pair.right]
            R = rig.R[pair.right] @ rig.R[pair.left].T
            T = rig.T[pair.right].ravel() - R @ rig.T[pair.left].ravel()
            rms = float(np.sqrt((left.rms**2 + right.rms**2) / 2))
        else:
            left, right = intr[pair.left], intr[pair.right]
            obj = [board_points(b.cols, b.rows, b.square_size)] * len(shared)
            R, T, rms = stereo_calibrate(left, right, obj, pl, pr)
        entry = stereo_entry(left, right, R, T, rms, pl, pr)
        rectified_preview(out / f"stereo_{pair.left}_{pair.right}.png", left, right, entry,
                          read_gray(Path(found_l[shared[0]].path)), read_gray(Path(found_r[shared[0]].path)))
        entries.append(entry)
    atomic_write_json(out / "stereo.json", [{k: (np.asarray(v).tolist() if not isinstance(v, str) else v)
                                              for k, v in e.items()} for e in entries])
    return entries


def step_export(cfg: CalibConfig, out: Path) -> Path:
    """Write calibration.yaml, camchain.yaml and report.html from the steps' results."""
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
        })
    path = write_calibration(out / "calibration.yaml", cams, stereo)
    write_kalibr(out / "camchain.yaml", cams)
    report_cams = [
        {"name": c.name, "rms": intr[c.name].rms, "per_view": intr[c.name].per_view,
         "rejected": intr[c.name].rejected,
         "corners": [np.asarray(d.corners) for d in dets[c.name] if d.found],
         "image_size": intr[c.name].image_size}
        for c in cfg.cameras
    ]
    rig_plots = [(r.name, r.R, r.T, r.board_poses) for r in rigs.values()]
    write_report(out / "report.html", report_cams, rig_plots, stereo)
    return path


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
