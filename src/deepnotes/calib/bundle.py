"""The joint bundle adjustment of a rig: residuals, their analytic Jacobian, a sparse Levenberg-Marquardt.

Parameters, in this order: per camera ``fx fy cx cy`` and its distortion; the pose (``rvec``, ``t``) of
every non-reference camera; one board pose per frame (board -> reference frame). A corner ``X`` (by id)
seen by camera ``c`` in frame ``f`` is predicted at ``pi_c(R_c (R_f X + t_f) + T_c)``.

Why not scipy's ``least_squares``: with a dense trust-region solver it takes an SVD of the whole Jacobian
(thousands of rows by hundreds of columns) per iteration, 0.4 s each on a 40-frame rig, and its
finite-difference Jacobian re-evaluates the residuals per group of columns. Here each view's Jacobian comes
from ``cv2.projectPoints`` (derivatives with respect to the view's rotation, translation, focal, centre and
distortion), chained through the camera and board poses, and stored sparse; a step solves the normal
equations ``(J^T W J + lambda diag) dx = -J^T W r`` (a few hundred unknowns) by Cholesky. The robust loss
is applied by iteratively reweighted least squares with scipy's convention: ``rho(z) = z`` for
``z = (r / s)^2 <= 1`` and ``2 sqrt(z) - 1`` beyond (Huber), so the minimum is the one scipy's ``loss="huber",
f_scale=s`` finds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.linalg import cho_factor, cho_solve

from deepnotes.calib.camera_model import N_DIST, distort, rodrigues, rodrigues_many

MAX_ITERATIONS = 60
LOSSES = ("linear", "huber", "soft_l1", "cauchy")


class Layout:
    """Where each block lives in the parameter vector: [intrinsics per camera | poses of non-reference
    cameras | board poses]."""

    def __init__(self, cameras: list[str], models: dict[str, str], reference: str, frames: list[str]):
        self.cameras, self.models, self.reference, self.frames = cameras, models, reference, frames
        self.intr, pos = {}, 0
        for c in cameras:
            n = 4 + N_DIST[models[c]]
            self.intr[c] = slice(pos, pos + n)
            pos += n
        self.pose = {}
        for c in cameras:
            if c != reference:
                self.pose[c] = slice(pos, pos + 6)
                pos += 6
        self.board_start = pos
        self.size = pos + 6 * len(frames)

    def board(self, k: int) -> slice:
        return slice(self.board_start + 6 * k, self.board_start + 6 * k + 6)

    def intrinsics(self, x: np.ndarray, c: str) -> tuple[np.ndarray, np.ndarray]:
        """K (3, 3) and distortion of camera ``c`` in ``x``."""
        p = x[self.intr[c]]
        return np.array([[p[0], 0, p[2]], [0, p[1], p[3]], [0, 0, 1.0]]), p[4:].copy()

    def cam_pose(self, x: np.ndarray, c: str) -> tuple[np.ndarray, np.ndarray]:
        """rvec (3,) and t (3,) of camera ``c`` (zeros for the reference)."""
        if c == self.reference:
            return np.zeros(3), np.zeros(3)
        p = x[self.pose[c]]
        return p[:3], p[3:]


@dataclass
class Observations:
    """Every corner observation, flat. ``view``: (M,) index into ``vcam``/``vframe`` (V,); ``point``: (M,)
    corner id into ``obj`` (N, 3); ``uv``: (M, 2) pixels."""

    vcam: np.ndarray
    vframe: np.ndarray
    view: np.ndarray
    point: np.ndarray
    uv: np.ndarray
    obj: np.ndarray


class Problem:
    """The residuals of a rig over the parameter vector, and their Jacobian; ``mask`` (M,) drops corners."""

    def __init__(self, layout: Layout, obs: Observations):
        self.layout, self.obs = layout, obs
        self.mask = np.ones(len(obs.uv), bool)
        self.cam_obs = [np.flatnonzero(obs.vcam[obs.view] == ci) for ci in range(len(layout.cameras))]
        self.view_obs = np.split(np.argsort(obs.view, kind="stable"),
                                 np.cumsum(np.bincount(obs.view, minlength=len(obs.vcam)))[:-1])

    def view_poses(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Board -> camera rotation (V, 3, 3) and translation (V, 3) of every view."""
        L, o = self.layout, self.obs
        boards = x[L.board_start:].reshape(-1, 6)
        Rb = rodrigues_many(boards[:, :3])
        Rc = np.stack([rodrigues(L.cam_pose(x, c)[0]) for c in L.cameras])
        tc = np.stack([L.cam_pose(x, c)[1] for c in L.cameras])
        R = Rc[o.vcam] @ Rb[o.vframe]
        t = np.einsum("vij,vj->vi", Rc[o.vcam], boards[o.vframe, 3:]) + tc[o.vcam]
        return R, t

    def project(self, x: np.ndarray) -> np.ndarray:
        """Predicted pixels of every observation, (M, 2)."""
        L, o = self.layout, self.obs
        R, t = self.view_poses(x)
        P = np.einsum("mij,mj->mi", R[o.view], o.obj[o.point]) + t[o.view]
        out = np.empty((len(o.uv), 2))
        for ci, c in enumerate(L.cameras):
            idx = self.cam_obs[ci]
            K, d = L.intrinsics(x, c)
            xd = distort(P[idx, :2] / P[idx, 2:3], d, L.models[c])
            out[idx] = np.stack([K[0, 0] * xd[:, 0] + K[0, 2], K[1, 1] * xd[:, 1] + K[1, 2]], axis=1)
        return out

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """(2 * kept corners,) pixel residuals, x and y interleaved."""
        return (self.project(x) - self.obs.uv)[self.mask].ravel()

    def view_jacobians(self, x: np.ndarray):
        """Per view: (its observations (n,), parameter columns (k,), d residuals / d those columns
        (2n, k)), analytic (see the module doc); residual rows are x then y of each corner."""
        L, o = self.layout, self.obs
        boards = x[L.board_start:].reshape(-1, 6)
        for v, idx in enumerate(self.view_obs):
            c = L.cameras[o.vcam[v]]
            blocks = _view_blocks(L, x, c, boards[o.vframe[v]], o.obj[o.point[idx]])
            spans = [L.intr[c]] + ([L.pose[c]] if c in L.pose else []) + [L.board(int(o.vframe[v]))]
            cols = np.concatenate([np.arange(sl.start, sl.stop) for sl in spans])
            yield idx, cols, np.concatenate(blocks, axis=1)

    def normal_equations(self, x: np.ndarray, w: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``J^T W J`` (size, size) and ``J^T W r`` (size,) for per-residual weights ``w`` and residuals
        ``r`` over every observation (2M,; a dropped corner has weight 0), accumulated view by view: the
        Jacobian itself is never stored."""
        A = np.zeros((self.layout.size, self.layout.size))
        g = np.zeros(self.layout.size)
        for idx, cols, Jv in self.view_jacobians(x):
            rows = (2 * idx[:, None] + np.arange(2)).ravel()
            WJ = Jv * w[rows, None]
            A[np.ix_(cols, cols)] += Jv.T @ WJ
            g[cols] += WJ.T @ r[rows]
        return A, g

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """The dense Jacobian of :meth:`residuals` (2 * kept corners, size): for tests and small problems."""
        J = np.zeros((2 * len(self.obs.uv), self.layout.size))
        for idx, cols, Jv in self.view_jacobians(x):
            J[np.ix_((2 * idx[:, None] + np.arange(2)).ravel(), cols)] = Jv
        return J[np.repeat(self.mask, 2)]


def _view_blocks(L: Layout, x: np.ndarray, c: str, board: np.ndarray, X: np.ndarray) -> list[np.ndarray]:
    """One view's Jacobian blocks (2n rows each): intrinsics, camera pose (non-reference), board pose.

    ``cv2.projectPoints`` gives d pixel / d (view rvec, view t, fx fy, cx cy, distortion); d pixel / d P of
    the camera-frame point is its d / d t. With P = R_c (R_b X + t_b) + t_c the poses follow by the chain
    rule, ``dR/dr`` coming from ``cv2.Rodrigues``' own Jacobian.
    """
    K, d = L.intrinsics(x, c)
    rc, tc = L.cam_pose(x, c)
    Rc, dRc = cv2.Rodrigues(rc.reshape(3, 1))
    Rb, dRb = cv2.Rodrigues(board[:3].reshape(3, 1))
    R, t = Rc @ Rb, Rc @ board[3:] + tc
    rvec = cv2.Rodrigues(R)[0]
    if L.models[c] == "fisheye":
        _, jac = cv2.fisheye.projectPoints(X.reshape(1, -1, 3), rvec, t, K, d)
        j_intr, j_t = jac[:, :8], jac[:, 11:14]
    else:
        _, jac = cv2.projectPoints(X, rvec, t, K, d)
        j_intr, j_t = jac[:, 6:], jac[:, 3:6]
    n = len(X)
    jt = j_t.reshape(n, 2, 3)  # d pixel / d P, per corner
    dRb3, dRc3 = dRb.reshape(3, 3, 3), dRc.reshape(3, 3, 3)  # [k] = dR / dr_k
    Y = X @ Rb.T + board[3:]  # corners in the reference frame
    d_rb = jt @ (Rc[None] @ np.einsum("kab,nb->nak", dRb3, X))  # (n, 2, 3)
    d_tb = jt @ Rc[None]
    blocks = [j_intr]
    if c in L.pose:
        d_rc = jt @ np.einsum("kab,nb->nak", dRc3, Y)
        blocks.append(np.concatenate([d_rc, jt], axis=2).reshape(2 * n, 6))
    blocks.append(np.concatenate([d_rb, d_tb], axis=2).reshape(2 * n, 6))
    return blocks


def robust_weights(r: np.ndarray, loss: str, scale: float) -> tuple[np.ndarray, float]:
    """IRLS weights rho'(z) (z = (r / scale)^2) per residual and the robust cost 0.5 s^2 sum rho(z)."""
    z = (r / scale) ** 2
    if loss == "linear":
        return np.ones_like(r), 0.5 * float(np.sum(r**2))
    if loss == "huber":
        big = z > 1
        rho = np.where(big, 2 * np.sqrt(z) - 1, z)
        w = np.where(big, 1 / np.sqrt(np.maximum(z, 1)), 1.0)
    elif loss == "soft_l1":
        rho, w = 2 * (np.sqrt(1 + z) - 1), 1 / np.sqrt(1 + z)
    elif loss == "cauchy":
        rho, w = np.log1p(z), 1 / (1 + z)
    else:
        raise ValueError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}")
    return w, 0.5 * scale**2 * float(np.sum(rho))


def _weights(problem: Problem, r: np.ndarray, loss: str, scale: float) -> tuple[np.ndarray, float]:
    """Per-residual IRLS weights over every observation (0 for dropped corners) and the robust cost of the
    kept ones."""
    keep = np.repeat(problem.mask, 2)
    w, cost = robust_weights(r[keep], loss, scale)
    full = np.zeros_like(r)
    full[keep] = w
    return full, cost


def levenberg_marquardt(problem: Problem, x0: np.ndarray, free: np.ndarray, loss: str = "huber",
                        scale: float = 1.0, max_iter: int = MAX_ITERATIONS,
                        tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise the robust cost over the ``free`` (bool, (size,)) parameters; returns the solution, the
    final weighted normal matrix ``J^T W J`` over the free parameters and the number of iterations."""
    x = x0.copy()
    r = (problem.project(x) - problem.obs.uv).ravel()
    w, cost = _weights(problem, r, loss, scale)
    lam, it, fi = 1e-3, 0, np.flatnonzero(free)
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is returned)
        A, g = problem.normal_equations(x, w, r)
        A, g = A[np.ix_(fi, fi)], g[fi]
        diag = np.maximum(np.diag(A), 1e-12)
        improved = small = False
        while lam < 1e12:
            try:
                step = -cho_solve(cho_factor(A + lam * np.diag(diag)), g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            x_new = x.copy()
            x_new[fi] += step
            r_new = (problem.project(x_new) - problem.obs.uv).ravel()
            w_new, cost_new = _weights(problem, r_new, loss, scale)
            if np.isfinite(cost_new) and cost_new <= cost:
                improved = True
                small = cost - cost_new <= tol * cost or np.linalg.norm(step) <= tol * (1 + np.linalg.norm(x))
                x, r, w, cost = x_new, r_new, w_new, cost_new
                lam = max(lam / 10, 1e-12)
                break
            lam *= 10
        if not improved or small:
            break
    A, _ = problem.normal_equations(x, w, r)
    return x, A[np.ix_(fi, fi)], it
