"""Camera models vs OpenCV, the renderer vs its own ground truth, BA and stereo on noisy true corners."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

from deepnotes.calib.camera_model import project, rotation_error_deg
from deepnotes.calib.config import CalibError
from deepnotes.calib.experiments import errors, noisy_observations, per_camera_intrinsics
from deepnotes.calib.intrinsics import IntrinsicsResult
from deepnotes.calib.rig import calibrate_rig, spanning_tree
from deepnotes.calib.stereo import essential_fundamental, rectify, stereo_calibrate, vertical_error


@pytest.mark.parametrize("model", ["pinhole", "pinhole_rational", "fisheye"])
def test_projection_matches_opencv(model):
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-0.5, 0.5, (50, 2)), rng.uniform(1, 3, 50)]
    K = np.array([[500.0, 0, 320], [0, 505, 240], [0, 0, 1]])
    rv, tv = np.zeros(3), np.zeros(3)
    if model == "fisheye":
        d = np.array([0.05, -0.01, 0.002, -0.001])
        ref = cv2.fisheye.projectPoints(pts.reshape(-1, 1, 3), rv, tv, K, d)[0].reshape(-1, 2)
    else:
        extra = [0.01, -0.02, 0.003] if model == "pinhole_rational" else []
        d = np.array([-0.2, 0.08, 1e-3, -2e-3, 0.01] + extra)
        ref = cv2.projectPoints(pts, rv, tv, K, d)[0].reshape(-1, 2)
    np.testing.assert_allclose(project(pts, K, d, model), ref, atol=1e-6)


def test_joint_ba_recovers_truth(small_rig):
    obs = noisy_observations(small_rig, 0.1, seed=1)
    intr = per_camera_intrinsics(obs, small_rig)
    res = calibrate_rig("rig", obs, "cam0", intr)
    e = errors({"K": {c: r.K for c, r in res.intrinsics.items()}, "R": res.R, "T": res.T}, small_rig)
    # 12 poses at 320x240, 0.15 m baseline, 0.1 px noise: a few tenths of a degree is the expected accuracy
    assert e["rotation_deg"] < 0.5 and e["translation_pct"] < 1.5 and e["focal_pct"] < 0.5
    assert 0.08 < res.rms < 0.15  # 0.1 px per axis -> ~0.14 px norm RMS, minus the fitted dof
    assert all(s["fx"] > 0 for s in res.std.values())


def test_ba_drops_gross_outlier_corners(small_rig):
    obs = noisy_observations(small_rig, 0.1, seed=2)
    f = sorted(obs.corners["cam1"])[0]
    obs.corners["cam1"][f][3] += 8.0  # a mis-detected corner
    intr = per_camera_intrinsics(obs, small_rig)
    res = calibrate_rig("rig", obs, "cam0", intr)
    assert res.outliers_removed >= 1 and res.rms < 0.2


def test_disconnected_camera_is_named():
    shared = {("a", "b"): ["f1"], ("b", "a"): ["f1"]}
    with pytest.raises(CalibError, match=r"\['c'\] share no board views"):
        spanning_tree(["a", "b", "c"], "a", shared)


def test_stereo_rectification_of_true_geometry(small_rig):
    obs = noisy_observations(small_rig, 0.0, seed=0)
    intr = per_camera_intrinsics(obs, small_rig)
    left, right = small_rig.cameras[0], small_rig.cameras[1]
    for c in (left, right):  # exact intrinsics
        intr[c.name].K, intr[c.name].dist = c.K, c.dist
    R, T = right.R, right.T
    E, F = essential_fundamental(R, T, left.K, right.K)
    shared = sorted(set(obs.corners["cam0"]) & set(obs.corners["cam1"]))
    pl = [obs.corners["cam0"][f] for f in shared]
    pr = [obs.corners["cam1"][f] for f in shared]
    ul = cv2.undistortPoints(pl[0].reshape(-1, 1, 2), left.K, left.dist, P=left.K).reshape(-1, 2)
    ur = cv2.undistortPoints(pr[0].reshape(-1, 1, 2), right.K, right.dist, P=right.K).reshape(-1, 2)
    epi = np.abs(np.sum(np.c_[ur, np.ones(len(ur))] * (np.c_[ul, np.ones(len(ul))] @ F.T), axis=1))
    assert epi.max() < 1e-2
    rect = rectify(intr["cam0"], intr["cam1"], R, T)
    assert vertical_error(intr["cam0"], intr["cam1"], rect, pl, pr) < 0.05


@pytest.mark.parametrize("fisheye_side", [0, 1])
def test_mixed_fisheye_pinhole_pair_recovers_the_true_extrinsics(small_rig, fisheye_side):
    # before: the pinhole stereoCalibrate read fisheye k1..k4 as k1 k2 p1 p2 and got a wrong R, T
    rig = copy.deepcopy(small_rig)
    cam = rig.cameras[fisheye_side]
    cam.model, cam.dist = "fisheye", np.array([-0.03, 0.01, -0.004, 0.001])
    obs = noisy_observations(rig, 0.0, seed=0)
    left, right = rig.cameras[0], rig.cameras[1]
    intr = {c.name: IntrinsicsResult(c.name, c.model, c.image_size, c.K, c.dist, 0.0, {})
            for c in (left, right)}
    shared = sorted(set(obs.corners["cam0"]) & set(obs.corners["cam1"]))
    pl = [obs.corners["cam0"][f] for f in shared]
    pr = [obs.corners["cam1"][f] for f in shared]
    R_true = right.R @ left.R.T
    T_true = right.T - R_true @ left.T
    R, T, rms = stereo_calibrate(intr["cam0"], intr["cam1"], [obs.obj] * len(shared), pl, pr)
    assert rotation_error_deg(R, R_true) < 1e-3
    assert np.linalg.norm(T - T_true) < 1e-4 * np.linalg.norm(T_true)
    assert rms < 1e-3
    rect = rectify(intr["cam0"], intr["cam1"], R, T)
    assert vertical_error(intr["cam0"], intr["cam1"], rect, pl, pr) < 0.05
