"""Shared experiment code for the claims, the benchmark and ``calib compare``: noisy corners, baselines,
errors against the ground truth."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from deepnotes.calib.camera_model import board_points, rotation_error_deg
from deepnotes.calib.intrinsics import IntrinsicsResult, Views, calibrate_intrinsics
from deepnotes.calib.rig import RigObservations, calibrate_rig
from deepnotes.calib.synthetic import SynthRig, synthetic_rig, true_corners


def noisy_observations(rig: SynthRig, sigma: float, seed: int) -> RigObservations:
    """True projected corners plus N(0, sigma^2) pixel noise, for every view that sees the whole board."""
    rng = np.random.default_rng(seed)
    b = rig.board
    corners: dict[str, dict[str, np.ndarray]] = {}
    for c in rig.cameras:
        corners[c.name] = {}
        for k, pose in enumerate(rig.board_poses):
            uv, ok = true_corners(c, b, pose)
            if ok:
                corners[c.name][f"f{k:04d}"] = uv + rng.normal(0, sigma, uv.shape)
    obj = board_points(b.cols, b.rows, b.square_size)
    return RigObservations([c.name for c in rig.cameras], corners, obj)


def per_camera_intrinsics(obs: RigObservations, rig: SynthRig) -> dict[str, IntrinsicsResult]:
    """Plain per-camera ``calibrateCamera`` (the starting point of every pipeline)."""
    out = {}
    for c in rig.cameras:
        frames = sorted(obs.corners[c.name])
        views = Views(frames, [obs.obj] * len(frames), [obs.corners[c.name][f] for f in frames], c.image_size)
        out[c.name] = calibrate_intrinsics(c.name, views, c.model, max_rounds=0)
    return out


def multiview_baseline(obs: RigObservations, rig: SynthRig,
                       intr: dict[str, IntrinsicsResult] | None = None) -> dict:
    """OpenCV 5 ``calibrateMultiview`` on the rig's observations: with ``intr`` the per-camera intrinsics are
    held fixed (pose-only refinement); without, it is left to itself (no intrinsic guess, flags 0: it
    calibrates each camera and may refine everything; OpenCV 5.1.0 returns each camera's calibrateCamera
    intrinsics unchanged either way, measured and reported by the claim). Returns {"K", "R", "T"} by
    camera."""
    frames = sorted({f for c in obs.cameras for f in obs.corners[c]})
    nc = len(obs.cameras)
    mask = np.zeros((nc, len(frames)), np.uint8)
    empty = np.zeros((len(obs.obj), 2), np.float32)
    pts = []
    for ci, c in enumerate(obs.cameras):
        for fi, f in enumerate(frames):
            mask[ci, fi] = f in obs.corners[c]
        pts.append([obs.corners[c][f].astype(np.float32) if f in obs.corners[c] else empty for f in frames])
    if intr is None:
        Ks = Ds = None
        fix, flags = np.zeros((nc, 1), np.int32), 0
    else:
        Ks = [intr[c].K.astype(np.float64) for c in obs.cameras]
        Ds = [intr[c].dist.reshape(1, -1).astype(np.float64) for c in obs.cameras]
        fix = np.full((nc, 1), cv2.CALIB_USE_INTRINSIC_GUESS | cv2.CALIB_FIX_INTRINSIC, np.int32)
        flags = cv2.CALIB_USE_INTRINSIC_GUESS
    _, Ks, Ds, Rs, Ts = cv2.calibrateMultiview(
        [obs.obj.astype(np.float32)] * len(frames), pts, [c.image_size for c in rig.cameras], mask,
        np.zeros((nc, 1), np.uint8), Ks, Ds, None, None, flagsForIntrinsics=fix, flags=flags,
    )
    R = {c: cv2.Rodrigues(np.asarray(r).reshape(3, 1))[0] if np.asarray(r).size == 3 else np.asarray(r)
         for c, r in zip(obs.cameras, Rs, strict=True)}
    T = {c: np.asarray(t).ravel() for c, t in zip(obs.cameras, Ts, strict=True)}
    return {"K": dict(zip(obs.cameras, Ks, strict=True)), "R": R, "T": T}


def errors(est: dict, rig: SynthRig) -> dict[str, float]:
    """Mean over non-reference cameras of rotation (deg) and translation (% of |T|) errors; over all cameras
    of focal (%) and principal point (px) errors. ``est``: {"K", "R", "T"} keyed by camera."""
    rot, trans, foc, pp = [], [], [], []
    for i, c in enumerate(rig.cameras):
        K = np.asarray(est["K"][c.name])
        foc.append(100 * abs(K[0, 0] - c.K[0, 0]) / c.K[0, 0])
        pp.append(float(np.linalg.norm(K[:2, 2] - c.K[:2, 2])))
        if i > 0:
            rot.append(rotation_error_deg(np.asarray(est["R"][c.name]), c.R))
            dt = np.linalg.norm(np.asarray(est["T"][c.name]).ravel() - c.T)
            trans.append(100 * float(dt / np.linalg.norm(c.T)))
    return {"rotation_deg": float(np.mean(rot)), "translation_pct": float(np.mean(trans)),
            "focal_pct": float(np.mean(foc)), "pp_px": float(np.mean(pp))}


@lru_cache(maxsize=32)
def noise_trial(n_frames: int, sigma: float, seed: int) -> dict:
    """One noisy-corner trial on the 4-camera synthetic rig: errors of calibrateMultiview and of our joint BA,
    plus the BA's predicted std of fx (mean over cameras) and its fx errors (px)."""
    rig = synthetic_rig(4, n_frames, (640, 480), seed=seed)
    # an independent noise draw per level: the same draw scaled by sigma would make linearity trivially true
    obs = noisy_observations(rig, sigma, seed + 1000 + int(round(sigma * 1000)))
    intr = per_camera_intrinsics(obs, rig)
    mv = errors(multiview_baseline(obs, rig, intr), rig)
    res = calibrate_rig("rig", obs, rig.cameras[0].name, intr)
    ba = errors({"K": {c: r.K for c, r in res.intrinsics.items()}, "R": res.R, "T": res.T}, rig)
    fx_err = [res.intrinsics[c.name].K[0, 0] - c.K[0, 0] for c in rig.cameras]
    fx_std = [res.std[c.name]["fx"] for c in rig.cameras]
    return {"multiview": mv, "joint": ba, "fx_err": fx_err, "fx_std": fx_std}


GOALS = {"focal_pct": 0.2, "pp_px": 1.0, "rotation_deg": 0.07, "translation_pct": 0.7}  # the targets


def truth_errors(calib: dict, truth: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Per camera of a ``calibration.yaml`` (``io_yaml.read_calibration``) against a synthetic rig's
    ``truth.json`` (``synthetic.load_truth``): focal error (% of fx), principal point (px), and for cameras
    other than the reference rotation (deg) and translation (% of the true baseline |T|)."""
    out = {}
    for cam in calib["cameras"]:
        t = truth[cam["name"]]
        e = {"focal_pct": 100 * abs(cam["K"][0, 0] - t["K"][0, 0]) / t["K"][0, 0],
             "pp_px": float(np.linalg.norm(cam["K"][:2, 2] - t["K"][:2, 2]))}
        baseline = float(np.linalg.norm(t["T"]))
        if baseline > 0:
            e["rotation_deg"] = rotation_error_deg(cam["R"], t["R"])
            e["translation_pct"] = 100 * float(np.linalg.norm(cam["T"].ravel() - t["T"]) / baseline)
        out[cam["name"]] = {k: float(v) for k, v in e.items()}
    return out
