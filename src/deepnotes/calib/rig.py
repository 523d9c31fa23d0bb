"""An N-camera rig: spanning-tree initialisation, then a joint bundle adjustment of everything.

1. Covisibility graph: cameras are nodes, an edge's weight is the number of frames in which both saw the
   board. A camera outside the reference's connected component is an error that names it.
2. Initial poses: a maximum spanning tree from the reference camera (the best-shared edges first); each
   edge's relative pose is a robust average of the per-frame relative poses ``T_b T_a^-1`` (board poses
   from the intrinsics step), chained along the tree.
3. Joint bundle adjustment (scipy ``least_squares``, trust-region reflective, robust loss, sparse Jacobian
   pattern so finite differences cost one evaluation per group of independent columns) of every camera's
   intrinsics and distortion, every non-reference camera pose and every board pose, minimising pixel
   reprojection error. Corners whose residual exceeds ``max(outlier_px, 5 sigma)`` are dropped and the
   problem is solved again. The Gauss-Newton covariance ``sigma^2 (J^T J)^-1`` gives parameter std devs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

from deepnotes.calib.camera_model import (
    N_DIST,
    board_points,
    distort,
    rodrigues,
    rodrigues_many,
    rvec_of,
    undistort_to_rays,
)
from deepnotes.calib.config import CalibError
from deepnotes.calib.intrinsics import IntrinsicsResult


@dataclass
class RigObservations:
    """Corner observations of a rig. ``corners[c][frame]``: (N, 2) pixels; all views see the same board."""

    cameras: list[str]
    corners: dict[str, dict[str, np.ndarray]]
    obj: np.ndarray  # (N, 3) board points


@dataclass
class RigResult:
    name: str
    reference: str
    cameras: list[str]
    intrinsics: dict[str, IntrinsicsResult]  # refined K, dist, rms, per-view errors per camera
    R: dict[str, np.ndarray]  # X_cam = R X_ref + T
    T: dict[str, np.ndarray]
    board_poses: dict[str, tuple[np.ndarray, np.ndarray]]  # frame -> (R, t): X_ref = R X_board + t
    rms: float
    std: dict[str, dict[str, float]] = field(default_factory=dict)  # camera -> parameter -> std
    outliers_removed: int = 0
    tree: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "name": self.name, "reference": self.reference, "cameras": self.cameras,
            "intrinsics": {c: r.to_json() for c, r in self.intrinsics.items()},
            "R": {c: v.tolist() for c, v in self.R.items()}, "T": {c: v.tolist() for c, v in self.T.items()},
            "board_poses": {f: [r.tolist(), t.tolist()] for f, (r, t) in self.board_poses.items()},
            "rms": self.rms, "std": self.std, "outliers_removed": self.outliers_removed,
            "tree": [list(e) for e in self.tree],
        }

    @classmethod
    def from_json(cls, d: dict) -> RigResult:
        return cls(
            d["name"], d["reference"], d["cameras"],
            {c: IntrinsicsResult.from_json(r) for c, r in d["intrinsics"].items()},
            {c: np.array(v) for c, v in d["R"].items()}, {c: np.array(v) for c, v in d["T"].items()},
            {f: (np.array(r), np.array(t)) for f, (r, t) in d["board_poses"].items()},
            d["rms"], d["std"], d["outliers_removed"], [tuple(e) for e in d["tree"]],
        )


# ---------------------------------------------------------------- initialisation


def covisibility(obs: RigObservations) -> dict[tuple[str, str], list[str]]:
    """(camera a, camera b) -> frames both saw, for every pair that shares at least one."""
    out = {}
    for i, a in enumerate(obs.cameras):
        for b in obs.cameras[i + 1:]:
            shared = sorted(set(obs.corners[a]) & set(obs.corners[b]))
            if shared:
                out[(a, b)] = out[(b, a)] = shared
    return out


def spanning_tree(cameras: list[str], reference: str,
                  shared: dict[tuple[str, str], list[str]]) -> list[tuple[str, str]]:
    """Maximum spanning tree (Prim) from ``reference``; edges (parent, child). Names unreachable cameras."""
    inside, edges = {reference}, []
    while len(inside) < len(cameras):
        best = max(
            ((len(shared.get((a, b), [])), a, b) for a in inside for b in cameras if b not in inside),
            default=(0, None, None),
        )
        if best[0] == 0:
            lonely = [c for c in cameras if c not in inside]
            raise CalibError(
                f"cameras {lonely} share no board views with {sorted(inside)} (the reference's group); "
                "record frames in which the board is seen by both groups at once"
            )
        edges.append((best[1], best[2]))
        inside.add(best[2])
    return edges


def robust_mean_pose(Rs: list[np.ndarray], ts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Average of noisy rigid transforms: drop those far from the medoid rotation, chordal mean, median t."""
    Rs_a, ts_a = np.array(Rs), np.array(ts)
    rv = np.array([rvec_of(R) for R in Rs_a])
    d = np.linalg.norm(rv[:, None, :] - rv[None, :, :], axis=2)
    medoid = int(np.argmin(d.sum(axis=1)))
    dist = d[medoid]
    keep = dist <= max(3 * np.median(dist), 1e-9)
    U, _, Vt = np.linalg.svd(Rs_a[keep].sum(axis=0))
    R = U @ np.diag([1, 1, np.linalg.det(U @ Vt)]) @ Vt
    return R, np.median(ts_a[keep], axis=0)


def initial_poses(obs: RigObservations, reference: str, intr: dict[str, IntrinsicsResult],
                  tree: list[tuple[str, str]], shared: dict) -> tuple[dict, dict, dict]:
    """Camera poses (R, T per camera, reference = identity) and board poses (per frame) to start the BA."""
    cam_pose = {reference: (np.eye(3), np.zeros(3))}
    view_pose = {c: {f: _board_to_cam(intr[c], obs, c, f) for f in obs.corners[c]} for c in obs.cameras}
    for a, b in tree:
        Rs, ts = [], []
        for f in shared[(a, b)]:
            Ra, ta = view_pose[a][f]
            Rb, tb = view_pose[b][f]
            R_ba = Rb @ Ra.T
            Rs.append(R_ba)
            ts.append(tb - R_ba @ ta)
        R_ba, t_ba = robust_mean_pose(Rs, ts)
        Ra_ref, Ta_ref = cam_pose[a]
        cam_pose[b] = (R_ba @ Ra_ref, R_ba @ Ta_ref + t_ba)
    boards = {}
    for c in obs.cameras:  # first camera (config order) that saw a frame gives its board pose
        Rc, Tc = cam_pose[c]
        for f, (Rcb, tcb) in view_pose[c].items():
            if f not in boards:
                boards[f] = (Rc.T @ Rcb, Rc.T @ (tcb - Tc))
    return cam_pose, boards, view_pose


def _board_to_cam(intr: IntrinsicsResult, obs: RigObservations, cam: str,
                  frame: str) -> tuple[np.ndarray, np.ndarray]:
    if frame in intr.poses:
        r, t = intr.poses[frame]
        return rodrigues(r), np.asarray(t).ravel()
    # views rejected by the intrinsics step have no pose yet: solve PnP on undistorted points
    rays = undistort_to_rays(obs.corners[cam][frame], intr.K, intr.dist, intr.model)
    ok, r, t = cv2.solvePnP(obs.obj, rays.reshape(-1, 1, 2), np.eye(3), None)
    return rodrigues(r.ravel()), t.ravel()


# ---------------------------------------------------------------- bundle adjustment


class _Layout:
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


def _pack(layout: _Layout, intr: dict, cam_pose: dict, boards: dict) -> np.ndarray:
    x = np.zeros(layout.size)
    for c in layout.cameras:
        K, d = intr[c]
        x[layout.intr[c]] = np.concatenate([[K[0, 0], K[1, 1], K[0, 2], K[1, 2]],
                                            d[: N_DIST[layout.models[c]]]])
    for c, sl in layout.pose.items():
        x[sl] = np.concatenate([rvec_of(cam_pose[c][0]), cam_pose[c][1]])
    for k, f in enumerate(layout.frames):
        x[layout.board(k)] = np.concatenate([rvec_of(boards[f][0]), boards[f][1]])
    return x


def _unpack_intr(layout: _Layout, x: np.ndarray, c: str) -> tuple[np.ndarray, np.ndarray]:
    p = x[layout.intr[c]]
    return np.array([[p[0], 0, p[2]], [0, p[1], p[3]], [0, 0, 1.0]]), p[4:].copy()


def _unpack_pose(layout: _Layout, x: np.ndarray, c: str) -> tuple[np.ndarray, np.ndarray]:
    if c == layout.reference:
        return np.zeros(3), np.zeros(3)
    p = x[layout.pose[c]]
    return p[:3], p[3:]


class _Problem:
    """Views (camera, frame) with their corners (V, N, 2) and the residual function over the parameters."""

    def __init__(self, layout: _Layout, obs: RigObservations):
        self.layout = layout
        fpos = {f: k for k, f in enumerate(layout.frames)}
        cam, frame, uv = [], [], []
        for ci, c in enumerate(layout.cameras):
            for f, pts in obs.corners[c].items():
                cam.append(ci)
                frame.append(fpos[f])
                uv.append(pts)
        self.vcam, self.vframe = np.array(cam), np.array(frame)
        self.uv = np.array(uv)  # (V, N, 2)
        self.obj = obs.obj  # (N, 3)
        self.mask = np.ones(self.uv.shape[:2], bool)  # (V, N): corners still in the problem
        self.n_points = len(obs.obj)

    def project_all(self, x: np.ndarray) -> np.ndarray:
        """Predicted pixels of every corner of every view, (V, N, 2)."""
        L = self.layout
        boards = x[L.board_start:].reshape(-1, 6)
        Rb = rodrigues_many(boards[:, :3])
        out = np.empty(self.uv.shape)
        for ci, c in enumerate(L.cameras):
            sel = self.vcam == ci
            fr = self.vframe[sel]
            r, t = _unpack_pose(L, x, c)
            Rc = rodrigues(r)
            # X_cam = Rc (Rb X + tb) + t  =  (Rc Rb) X + (Rc tb + t)
            R = Rc[None] @ Rb[fr]
            tt = boards[fr, 3:] @ Rc.T + t
            P = np.einsum("vij,nj->vni", R, self.obj) + tt[:, None, :]
            K, d = _unpack_intr(L, x, c)
            xd = distort((P[..., :2] / P[..., 2:3]).reshape(-1, 2), d, L.models[c])
            out[sel] = np.stack([K[0, 0] * xd[:, 0] + K[0, 2], K[1, 1] * xd[:, 1] + K[1, 2]], axis=1).reshape(
                len(fr), self.n_points, 2)
        return out

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """(2 * kept corners,) pixel residuals, x and y interleaved."""
        return (self.project_all(x) - self.uv)[self.mask].ravel()

    def column_rows(self) -> list[np.ndarray]:
        """For each parameter, the residual rows it moves (intrinsics/pose: its camera's; board: its
        frame's)."""
        L = self.layout
        row_of = np.full(self.mask.shape, -1)
        row_of[self.mask] = np.arange(int(self.mask.sum()))
        rows_per_view = [np.sort(np.concatenate([2 * r[r >= 0], 2 * r[r >= 0] + 1])) for r in row_of]
        cols: list[np.ndarray] = [np.array([], int)] * L.size
        for ci, c in enumerate(L.cameras):
            rows = np.concatenate([rows_per_view[v] for v in np.flatnonzero(self.vcam == ci)])
            for sl in [L.intr[c]] + ([L.pose[c]] if c in L.pose else []):
                for j in range(sl.start, sl.stop):
                    cols[j] = rows
        for k in range(len(L.frames)):
            rows = np.concatenate([rows_per_view[v] for v in np.flatnonzero(self.vframe == k)]
                                  + [np.array([], int)])
            for j in range(L.board(k).start, L.board(k).stop):
                cols[j] = rows
        return cols


def _colour_columns(col_rows: list[np.ndarray], n_rows: int) -> list[list[int]]:
    """Greedy grouping of parameters that touch disjoint residual rows (one finite difference per group)."""
    groups: list[list[int]] = []
    used: list[np.ndarray] = []
    for j, rows in enumerate(col_rows):
        for g, u in zip(groups, used, strict=False):
            if not u[rows].any():
                g.append(j)
                u[rows] = True
                break
        else:
            u = np.zeros(n_rows, bool)
            u[rows] = True
            groups.append([j])
            used.append(u)
    return groups


def _sparse_fd_jacobian(fun, x: np.ndarray, f0: np.ndarray, col_rows: list[np.ndarray],
                        groups: list[list[int]]) -> np.ndarray:
    """Forward-difference Jacobian (dense) that perturbs a whole group of independent parameters at once."""
    J = np.zeros((len(f0), len(x)))
    h = 1.5e-8 * np.maximum(1.0, np.abs(x))
    for g in groups:
        xp = x.copy()
        xp[g] += h[g]
        df = fun(xp) - f0
        for j in g:
            J[col_rows[j], j] = df[col_rows[j]] / h[j]
    return J


def bundle_adjust(
    obs: RigObservations, models: dict[str, str], reference: str,
    intr0: dict[str, tuple[np.ndarray, np.ndarray]],
    cam_pose0: dict, boards0: dict, loss: str = "huber", loss_scale: float = 1.0, outlier_px: float = 1.0,
    optimize_intrinsics: bool = True,
) -> dict:
    """Jointly refine intrinsics (unless ``optimize_intrinsics=False``), camera poses and board poses.

    The Jacobian is computed by grouped forward differences over its known sparsity (a camera's parameters
    touch only its own corners, a board pose only its frame's), then solved densely (``tr_solver="exact"``),
    which converges in a few tens of iterations for rigs of a few cameras and ~100 frames.
    Returns {"K", "dist", "R", "T", "boards", "rms", "cam_rms", "per_view", "std", "outliers"}.
    """
    frames = sorted(boards0)
    layout = _Layout(obs.cameras, models, reference, frames)
    prob = _Problem(layout, obs)
    x = _pack(layout, intr0, cam_pose0, boards0)
    free = np.ones(layout.size, bool)
    if not optimize_intrinsics:
        for c in obs.cameras:
            free[layout.intr[c]] = False
    free_idx = np.flatnonzero(free)

    outliers = 0
    for stage in range(2):
        x_fixed = x.copy()

        def fun(xf: np.ndarray, x_fixed: np.ndarray = x_fixed) -> np.ndarray:
            full = x_fixed.copy()
            full[free] = xf
            return prob.residuals(full)

        col_rows_all = prob.column_rows()
        col_rows = [col_rows_all[j] for j in free_idx]
        groups = _colour_columns(col_rows, 2 * int(prob.mask.sum()))

        def jac(xf: np.ndarray, fun=fun, col_rows=col_rows, groups=groups) -> np.ndarray:
            return _sparse_fd_jacobian(fun, xf, fun(xf), col_rows, groups)

        # one BLAS thread: the matrices are small (thousands x hundreds) and a multi-threaded SVD on a busy
        # machine spends its time spinning (we measured 6 s per SVD under load, 0.05 s single-threaded)
        with threadpool_limits(limits=1):
            res = least_squares(fun, x[free], jac=jac, loss=loss, f_scale=loss_scale, x_scale="jac",
                                method="trf", tr_solver="exact", xtol=1e-9, ftol=1e-9, gtol=1e-9, max_nfev=50)
        x = x_fixed.copy()
        x[free] = res.x
        if stage == 1:
            break
        err = np.linalg.norm(prob.project_all(x) - prob.uv, axis=2)
        sigma = 1.4826 * np.median(err[prob.mask])
        bad = prob.mask & (err > max(outlier_px, 5 * sigma))
        outliers = int(bad.sum())
        if outliers == 0:
            break
        prob.mask &= ~bad
    return _summarise(prob, layout, x, res, free, outliers)


def _summarise(prob: _Problem, layout: _Layout, x: np.ndarray, res, free: np.ndarray, outliers: int) -> dict:
    err = np.linalg.norm(prob.project_all(x) - prob.uv, axis=2)  # (V, N)
    m = prob.mask
    out: dict = {"K": {}, "dist": {}, "R": {}, "T": {}, "cam_rms": {}, "per_view": {}, "std": {},
                 "outliers": outliers}
    for ci, c in enumerate(layout.cameras):
        out["K"][c], out["dist"][c] = _unpack_intr(layout, x, c)
        r, t = _unpack_pose(layout, x, c)
        out["R"][c], out["T"][c] = rodrigues(r), t.copy()
        views = np.flatnonzero(prob.vcam == ci)
        out["cam_rms"][c] = float(np.sqrt(np.mean(err[views][m[views]] ** 2)))
        out["per_view"][c] = {
            layout.frames[prob.vframe[v]]: float(np.sqrt(np.mean(err[v][m[v]] ** 2)))
            for v in views if m[v].any()
        }
    out["rms"] = float(np.sqrt(np.mean(err[m] ** 2)))
    boards = x[layout.board_start:].reshape(-1, 6)
    out["boards"] = {f: (rodrigues(boards[k, :3]), boards[k, 3:].copy()) for k, f in enumerate(layout.frames)}
    # Gauss-Newton covariance of the free parameters: sigma^2 (J^T J)^-1
    J = np.asarray(res.jac)
    dof = max(1, J.shape[0] - J.shape[1])
    sigma2 = float(np.sum(prob.residuals(x) ** 2) / dof)
    cov = np.linalg.pinv(J.T @ J) * sigma2
    std_full = np.full(layout.size, np.nan)
    std_full[free] = np.sqrt(np.clip(np.diag(cov), 0, None))
    names_intr = ["fx", "fy", "cx", "cy"] + [f"d{i}" for i in range(8)]
    for c in layout.cameras:
        s = {n: float(v) for n, v in zip(names_intr, std_full[layout.intr[c]], strict=False)}
        if c in layout.pose:
            names_pose = ["rx", "ry", "rz", "tx", "ty", "tz"]
            s.update({n: float(v) for n, v in zip(names_pose, std_full[layout.pose[c]], strict=False)})
        out["std"][c] = s
    return out


def calibrate_rig(
    name: str, obs: RigObservations, reference: str, intr: dict[str, IntrinsicsResult], loss: str = "huber",
    loss_scale: float = 1.0, outlier_px: float = 1.0, optimize_intrinsics: bool = True,
) -> RigResult:
    """The whole rig step: covisibility, spanning tree, initial poses, joint bundle adjustment."""
    shared = covisibility(obs)
    tree = spanning_tree(obs.cameras, reference, shared)
    cam_pose, boards, _ = initial_poses(obs, reference, intr, tree, shared)
    models = {c: intr[c].model for c in obs.cameras}
    intr0 = {c: (intr[c].K, intr[c].dist) for c in obs.cameras}
    ba = bundle_adjust(obs, models, reference, intr0, cam_pose, boards, loss, loss_scale, outlier_px,
                       optimize_intrinsics)
    refined = {
        c: IntrinsicsResult(c, models[c], intr[c].image_size, ba["K"][c], ba["dist"][c], ba["cam_rms"][c],
                            ba["per_view"][c], dict(intr[c].rejected), ba["std"][c])
        for c in obs.cameras
    }
    return RigResult(name, reference, list(obs.cameras), refined, ba["R"], ba["T"], ba["boards"], ba["rms"],
                     ba["std"], ba["outliers"], tree)


def observations_from_views(cameras: list[str], views: dict, cols: int, rows: int,
                            square: float) -> RigObservations:
    """Build :class:`RigObservations` from per-camera ``Views`` (intrinsics step input)."""
    corners = {c: {f: np.asarray(i, float) for f, i in zip(views[c].frames, views[c].img, strict=False)}
               for c in cameras}
    return RigObservations(cameras, corners, board_points(cols, rows, square))
