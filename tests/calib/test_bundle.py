"""The joint adjustment's machinery: analytic Jacobian vs finite differences, our Levenberg-Marquardt vs
scipy's least_squares, and partial views (corner ids) through the whole rig step."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

from deepnotes.calib.bundle import Layout, Problem, levenberg_marquardt, robust_weights
from deepnotes.calib.experiments import errors, noisy_observations, per_camera_intrinsics
from deepnotes.calib.rig import (
    RigObservations,
    _flatten,
    _pack,
    calibrate_rig,
    covisibility,
    initial_poses,
    spanning_tree,
)
from deepnotes.calib.synthetic import synthetic_rig


def _partial(obs: RigObservations, keep: float, seed: int) -> RigObservations:
    """Every view keeps a random contiguous share of its corners (with their ids), as ChArUco views do."""
    rng = np.random.default_rng(seed)
    corners, ids = {}, {}
    n = len(obs.obj)
    for c in obs.cameras:
        corners[c], ids[c] = {}, {}
        for f, uv in obs.corners[c].items():
            start = int(rng.integers(0, n - int(keep * n) + 1))
            sel = np.arange(start, start + int(keep * n))
            corners[c][f], ids[c][f] = uv[sel], sel
    return RigObservations(obs.cameras, corners, obs.obj, ids)


def _problem(model: str, keep: float = 0.6):
    rig = synthetic_rig(3, 6, (320, 240), seed=3, model=model)
    obs = _partial(noisy_observations(rig, 0.1, 1), keep, 0)
    full = noisy_observations(rig, 0.1, 1)
    intr = per_camera_intrinsics(full, rig)
    shared = covisibility(obs)
    cams, boards, _ = initial_poses(obs, "cam0", intr, spanning_tree(obs.cameras, "cam0", shared), shared)
    layout = Layout(obs.cameras, {c: model for c in obs.cameras}, "cam0", sorted(boards))
    prob = Problem(layout, _flatten(obs, layout))
    return prob, _pack(layout, {c: (intr[c].K, intr[c].dist) for c in obs.cameras}, cams, boards)


@pytest.mark.parametrize("model", ["pinhole", "pinhole_rational", "fisheye"])
def test_analytic_jacobian_equals_central_differences(model):
    prob, x = _problem(model)
    prob.mask[::7] = False  # dropped corners leave the Jacobian too
    J = prob.jacobian(x)
    assert J.shape == (2 * int(prob.mask.sum()), len(x))
    num = np.zeros_like(J)
    for j in range(len(x)):
        h = 1e-6 * max(1.0, abs(x[j]))
        xp, xm = x.copy(), x.copy()
        xp[j] += h
        xm[j] -= h
        num[:, j] = (prob.residuals(xp) - prob.residuals(xm)) / (2 * h)
    assert np.abs(J - num).max() < 1e-6 * np.abs(num).max()


def test_normal_equations_equal_the_jacobians_products():
    prob, x = _problem("pinhole")
    prob.mask[::5] = False
    r = (prob.project(x) - prob.obs.uv).ravel()
    w = np.random.default_rng(0).uniform(0.2, 1.0, r.shape) * np.repeat(prob.mask, 2)
    A, g = prob.normal_equations(x, w, r)
    J, keep = prob.jacobian(x), np.repeat(prob.mask, 2)
    np.testing.assert_allclose(A, J.T @ (J * w[keep, None]), rtol=1e-10, atol=1e-6)
    np.testing.assert_allclose(g, J.T @ (w[keep] * r[keep]), rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("loss", ["huber", "linear", "soft_l1"])
def test_levenberg_marquardt_finds_scipys_minimum(loss):
    # reference: scipy's least_squares on the same residuals with the same robust loss
    prob, x0 = _problem("pinhole")
    prob.obs.uv[::40] += 4.0  # a few bad corners so the robust loss matters
    free = np.ones(len(x0), bool)
    ours, _, _ = levenberg_marquardt(prob, x0, free, loss, 0.5)
    ref = least_squares(prob.residuals, x0, jac=prob.jacobian, loss=loss, f_scale=0.5, x_scale="jac",
                        method="trf", xtol=1e-12, ftol=1e-12, gtol=1e-12)
    cost = robust_weights(prob.residuals(ours), loss, 0.5)[1]
    assert abs(cost - ref.cost) <= 1e-7 * ref.cost  # scipy's cost is 0.5 s^2 sum rho, as ours
    # the same minimum: k3 and the principal point trade off in a flat valley on this small rig, so compare
    # what the parameters predict, and the well-determined focal lengths
    np.testing.assert_allclose(prob.project(ours), prob.project(ref.x), atol=2e-3)
    for c in prob.layout.cameras:
        np.testing.assert_allclose(ours[prob.layout.intr[c]][:2], ref.x[prob.layout.intr[c]][:2], rtol=1e-5)


def test_partial_views_through_the_rig_step_recover_the_truth(small_rig):
    obs = _partial(noisy_observations(small_rig, 0.1, seed=1), 0.6, 1)
    intr = per_camera_intrinsics(noisy_observations(small_rig, 0.1, seed=1), small_rig)
    res = calibrate_rig("rig", obs, "cam0", intr)
    e = errors({"K": {c: r.K for c, r in res.intrinsics.items()}, "R": res.R, "T": res.T}, small_rig)
    assert e["rotation_deg"] < 0.6 and e["translation_pct"] < 2.0 and e["focal_pct"] < 0.6
    assert 0.08 < res.rms < 0.15
    # the per-view errors are over each view's own corners
    assert set(res.intrinsics["cam1"].per_view) == set(obs.corners["cam1"])
