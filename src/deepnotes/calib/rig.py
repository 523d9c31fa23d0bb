"""An N-camera rig: spanning-tree initialisation, then a joint bundle adjustment of everything.

Views may show part of the board (ChArUco): each view's corners carry their ids, and every step below
works per corner id.

1. Covisibility graph: cameras are nodes, an edge's weight is the number of frames in which both saw the
   board. A camera outside the reference's connected component is an error that names it.
2. Initial poses: a maximum spanning tree from the reference camera (the best-shared edges first); each
   edge's relative pose is a robust average of the per-frame relative poses ``T_b T_a^-1`` (board poses
   from the intrinsics step), chained along the tree.
3. Joint bundle adjustment (``deepnotes.calib.bundle``: analytic sparse Jacobian, Levenberg-Marquardt on
   the normal equations, robust loss) of every camera's intrinsics and distortion, every non-reference
   camera pose and every board pose, minimising pixel reprojection error. Corners whose residual exceeds
   ``max(outlier_px, 5 sigma)`` are dropped and the problem is solved again. The Gauss-Newton covariance
   ``sigma^2 (J^T W J)^-1`` gives parameter std devs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from deepnotes.calib.bundle import Layout, Observations, Problem, levenberg_marquardt
from deepnotes.calib.camera_model import N_DIST, rodrigues, rvec_of, undistort_to_rays
from deepnotes.calib.config import CalibError
from deepnotes.calib.intrinsics import IntrinsicsResult, Views


@dataclass
class RigObservations:
    """Corner observations of a rig. ``corners[c][frame]``: (n, 2) pixels of the corners whose ids are
    ``ids[c][frame]`` (n,); without ``ids`` every view holds all N corners in order."""

    cameras: list[str]
    corners: dict[str, dict[str, np.ndarray]]
    obj: np.ndarray  # (N, 3) the board's corners by id
    ids: dict[str, dict[str, np.ndarray]] | None = None

    def view_ids(self, cam: str, frame: str) -> np.ndarray:
        """Corner ids of one view, (n,)."""
        if self.ids is None:
            return np.arange(len(self.obj))
        return np.asarray(self.ids[cam][frame], np.intp)

    def view_obj(self, cam: str, frame: str) -> np.ndarray:
        """Board points of one view's corners, (n, 3)."""
        return self.obj[self.view_ids(cam, frame)]


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
    ok, r, t = cv2.solvePnP(obs.view_obj(cam, frame), rays.reshape(-1, 1, 2), np.eye(3), None)
    return rodrigues(r.ravel()), t.ravel()


# ---------------------------------------------------------------- bundle adjustment


def _pack(layout: Layout, intr: dict, cam_pose: dict, boards: dict) -> np.ndarray:
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


def _flatten(obs: RigObservations, layout: Layout) -> Observations:
    """The rig's views as flat observation arrays (see :class:`bundle.Observations`)."""
    fpos = {f: k for k, f in enumerate(layout.frames)}
    vcam, vframe, view, point, uv = [], [], [], [], []
    for ci, c in enumerate(layout.cameras):
        for f, pts in obs.corners[c].items():
            ids = obs.view_ids(c, f)
            view.append(np.full(len(ids), len(vcam)))
            vcam.append(ci)
            vframe.append(fpos[f])
            point.append(ids)
            uv.append(np.asarray(pts, float).reshape(-1, 2))
    return Observations(np.array(vcam), np.array(vframe), np.concatenate(view), np.concatenate(point),
                        np.concatenate(uv), np.asarray(obs.obj, float))


def bundle_adjust(
    obs: RigObservations, models: dict[str, str], reference: str,
    intr0: dict[str, tuple[np.ndarray, np.ndarray]],
    cam_pose0: dict, boards0: dict, loss: str = "huber", loss_scale: float = 1.0, outlier_px: float = 1.0,
    optimize_intrinsics: bool = True,
) -> dict:
    """Jointly refine intrinsics (unless ``optimize_intrinsics=False``), camera poses and board poses.

    Analytic sparse Jacobian and Levenberg-Marquardt on the normal equations (``deepnotes.calib.bundle``);
    corners above ``max(outlier_px, 5 robust sigma)`` are dropped and the problem solved once more.
    Returns {"K", "dist", "R", "T", "boards", "rms", "cam_rms", "per_view", "std", "outliers",
    "iterations"}.
    """
    layout = Layout(obs.cameras, models, reference, sorted(boards0))
    prob = Problem(layout, _flatten(obs, layout))
    x = _pack(layout, intr0, cam_pose0, boards0)
    free = np.ones(layout.size, bool)
    if not optimize_intrinsics:
        for c in obs.cameras:
            free[layout.intr[c]] = False
    outliers, iterations = 0, []
    for stage in range(2):
        # one BLAS thread: the normal matrix is small (hundreds squared) and a multi-threaded factorisation
        # on a busy machine spends its time spinning
        with threadpool_limits(limits=1):
            x, normal, n_iter = levenberg_marquardt(prob, x, free, loss, loss_scale)
        iterations.append(n_iter)
        if stage == 1:
            break
        err = np.linalg.norm(prob.project(x) - prob.obs.uv, axis=1)
        sigma = 1.4826 * np.median(err[prob.mask])
        bad = prob.mask & (err > max(outlier_px, 5 * sigma))
        outliers = int(bad.sum())
        if outliers == 0:
            break
        prob.mask &= ~bad
    out = _summarise(prob, layout, x, normal, free)
    out.update(outliers=outliers, iterations=iterations)
    return out


def _summarise(prob: Problem, layout: Layout, x: np.ndarray, normal: np.ndarray, free: np.ndarray) -> dict:
    err = np.linalg.norm(prob.project(x) - prob.obs.uv, axis=1)  # (M,)
    m, o = prob.mask, prob.obs
    view_of = o.view
    out: dict = {"K": {}, "dist": {}, "R": {}, "T": {}, "cam_rms": {}, "per_view": {}, "std": {}}
    for ci, c in enumerate(layout.cameras):
        out["K"][c], out["dist"][c] = layout.intrinsics(x, c)
        r, t = layout.cam_pose(x, c)
        out["R"][c], out["T"][c] = rodrigues(r), t.copy()
        idx = prob.cam_obs[ci][m[prob.cam_obs[ci]]]
        out["cam_rms"][c] = float(np.sqrt(np.mean(err[idx] ** 2)))
        sq = np.bincount(view_of[idx], weights=err[idx] ** 2, minlength=len(o.vcam))
        cnt = np.bincount(view_of[idx], minlength=len(o.vcam))
        out["per_view"][c] = {layout.frames[o.vframe[v]]: float(np.sqrt(sq[v] / cnt[v]))
                              for v in np.flatnonzero((o.vcam == ci) & (cnt > 0))}
    out["rms"] = float(np.sqrt(np.mean(err[m] ** 2)))
    boards = x[layout.board_start:].reshape(-1, 6)
    out["boards"] = {f: (rodrigues(boards[k, :3]), boards[k, 3:].copy()) for k, f in enumerate(layout.frames)}
    # Gauss-Newton covariance of the free parameters: sigma^2 (J^T W J)^-1
    r = prob.residuals(x)
    dof = max(1, len(r) - int(free.sum()))
    cov = np.linalg.pinv(normal) * float(np.sum(r**2) / dof)
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


def observations_from_views(cameras: list[str], views: dict[str, Views], obj: np.ndarray) -> RigObservations:
    """Build :class:`RigObservations` from per-camera ``Views`` (the intrinsics step's input) and the
    board's corner table ``obj`` (N, 3)."""
    corners = {c: {f: np.asarray(i, float) for f, i in zip(views[c].frames, views[c].img, strict=True)}
               for c in cameras}
    ids = {c: dict(zip(views[c].frames, views[c].view_ids(), strict=True)) for c in cameras}
    return RigObservations(cameras, corners, np.asarray(obj, float), ids)
