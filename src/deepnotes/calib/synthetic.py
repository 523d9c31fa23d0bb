"""A deterministic chessboard and ChArUco renderer for any rig, from known intrinsics, distortion and poses.

Each output pixel is traced back through the *true* lens model (the distortion is inverted per pixel to a
ray), the ray is intersected with the board plane and the board's colour is averaged over an ``ss x ss``
sub-pixel grid (anti-aliasing), then the image is blurred (Gaussian) and noised. Square and marker edges are
computed exactly from the board coordinates (no texture), so the true corners are exact. Boards are sampled
near and far (small), slanted up to ~55 degrees and sometimes partly out of view; with ``visible=(lo, hi)``
every camera sees between ``lo`` and ``hi`` of the board's corners in every frame (partial views, the case
ChArUco boards are for). ``write_dataset`` saves a ready-to-run project: per-camera folders or four-way 2x2
mosaics, a config and the ground truth.

Chessboard convention (the detector relies on it): the square outside corner 0 is black, the board has a
white margin of one square, and inner corners lie at ``(i * s, j * s, 0)`` (``camera_model.board_points``).
ChArUco boards follow OpenCV's ``CharucoBoard`` (square (0, 0) black, corner 0 at ``(s, s, 0)``, markers in
the white squares as OpenCV places them), with a white margin of one square.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from deepnotes.calib.boards import marker_cells, object_points
from deepnotes.calib.camera_model import project, rodrigues, undistort_to_rays
from deepnotes.calib.config import Board, CalibConfig, Camera, Rig, Source, StereoPair, dump_config
from deepnotes.core.checkpoint import atomic_write_json, atomic_write_text
from deepnotes.core.seed import seeded_generator

BLACK, WHITE = 35.0, 215.0
MAX_TRIES = 400  # board poses tried per accepted frame when every camera must see a share of the board
MAX_VIEW_ANGLE = 70.0  # degrees: a partial-view rig's cameras see the board at most this far from head-on
# the boards ``calib synth`` renders: today's whole-board chessboard, and the large board of the partial-view
# rigs (12 x 9 squares of 6 cm), as ChArUco or as the chessboard of the same squares (11 x 8 inner corners)
CHARUCO_BOARD = Board(cols=12, rows=9, square_size=0.06, type="charuco", marker_size=0.045,
                      dictionary="DICT_5X5_100")
PARTIAL_CHESSBOARD = Board(cols=11, rows=8, square_size=0.06)
PARTIAL_DEPTH = (0.5, 1.2)  # metres: the large board then covers more than one camera's view


@dataclass
class SynthCamera:
    name: str
    K: np.ndarray  # (3, 3)
    dist: np.ndarray  # (N_DIST[model],)
    model: str
    image_size: tuple[int, int]  # (w, h)
    R: np.ndarray  # (3, 3): X_cam = R X_ref + T
    T: np.ndarray  # (3,)
    _rays: dict = field(default_factory=dict, repr=False)

    def rays(self, ss: int) -> np.ndarray:
        """Undistorted normalised rays of an ``ss x ss`` sub-pixel grid, (h*ss, w*ss, 2); cached."""
        if ss not in self._rays:
            w, h = self.image_size
            offs = (np.arange(ss) + 0.5) / ss - 0.5
            u = (np.arange(w)[:, None] + offs[None, :]).ravel()
            v = (np.arange(h)[:, None] + offs[None, :]).ravel()
            uu, vv = np.meshgrid(u, v)
            pix = np.stack([uu.ravel(), vv.ravel()], axis=1)
            rays = undistort_to_rays(pix, self.K, self.dist, self.model).reshape(h * ss, w * ss, 2)
            self._rays[ss] = rays.astype(np.float32)
        return self._rays[ss]


@dataclass
class SynthRig:
    cameras: list[SynthCamera]
    board: Board
    board_poses: list[tuple[np.ndarray, np.ndarray]]  # (R, t): X_ref = R X_board + t

    def truth(self) -> dict:
        """Ground truth as JSON-able lists."""
        return {
            "board": {k: v for k, v in vars(self.board).items() if v is not None},
            "cameras": [
                {"name": c.name, "model": c.model, "image_size": list(c.image_size), "K": c.K.tolist(),
                 "dist": c.dist.tolist(), "R": c.R.tolist(), "T": c.T.tolist()}
                for c in self.cameras
            ],
        }


def _look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation R (world -> camera) of a camera at ``position`` whose optical axis points at ``target``."""
    z = target - position
    z = z / np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def make_rig(
    n_cameras: int = 4,
    image_size: tuple[int, int] = (640, 480),
    seed: int = 0,
    baseline: float = 0.3,
    model: str = "pinhole",
    board: Board | None = None,
) -> tuple[SynthRig, np.ndarray, np.ndarray]:
    """N cameras on a grid (2x2 for four) ``baseline`` apart, converging on a point 1.5 m ahead.

    Intrinsics vary per camera around f = 0.95 w; distortion is barrel (k1 ~ -0.2) or a fisheye ``k``.
    Camera 0 is the reference (R = I, T = 0). Also returns camera 0's world rotation and position, which
    :func:`sample_board_poses` needs.
    """
    rng = seeded_generator(seed)
    board = board or Board(cols=9, rows=6, square_size=0.04)
    w, h = image_size
    ncol = int(np.ceil(np.sqrt(n_cameras)))
    centre_target = np.array([0.0, 0.0, 1.5])
    positions = [
        np.array([(i % ncol) * baseline, (i // ncol) * baseline * 0.8, 0.0]) for i in range(n_cameras)
    ]
    mid = np.mean(positions, axis=0)
    positions = [p - mid for p in positions]
    world_R0 = _look_at(positions[0], centre_target)
    cams = []
    for i, pos in enumerate(positions):
        f = 0.95 * w * (1 + rng.uniform(-0.05, 0.05))
        K = np.array([[f, 0, w / 2 + rng.uniform(-8, 8)],
                      [0, f * (1 + rng.uniform(-0.004, 0.004)), h / 2 + rng.uniform(-8, 8)],
                      [0, 0, 1]])
        if model == "fisheye":
            dist = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.02, 0.02), 0.0, 0.0])
        else:
            dist = np.array([rng.uniform(-0.25, -0.15), rng.uniform(0.05, 0.12), rng.uniform(-1e-3, 1e-3),
                             rng.uniform(-1e-3, 1e-3), 0.0])
            if model == "pinhole_rational":
                dist = np.concatenate([dist, [0.0, 0.0, 0.0]])
        R_world = _look_at(pos, centre_target + rng.normal(0, 0.03, 3))
        # reference frame = camera 0: X_cam = R_world (X_w - pos), X_w = R0^T X_ref + pos0
        R = R_world @ world_R0.T
        T = R_world @ (positions[0] - pos)
        cams.append(SynthCamera(f"cam{i}", K, dist, model, (w, h), R, T))
    cams[0].R, cams[0].T = np.eye(3), np.zeros(3)
    # board poses are generated in the world (mid-rig) frame and converted to camera 0's frame
    return SynthRig(cams, board, []), world_R0, positions[0]


def _random_pose(rng: np.random.Generator, depth: tuple[float, float],
                 centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A board pose in the world (mid-rig) frame: the board centre ``depth`` away, tilted and rolled."""
    z = rng.uniform(*depth)
    target = np.array([rng.uniform(-0.35, 0.35) * z, rng.uniform(-0.25, 0.25) * z, z])
    # board faces the rig (its z axis points away from the cameras), then tilted and rolled
    tilt = rng.uniform(-55, 55, size=2)
    roll = rng.uniform(-25, 25)
    Rb = rodrigues(np.radians([tilt[0], 0, 0])) @ rodrigues(np.radians([0, tilt[1], 0])) @ rodrigues(
        np.radians([0, 0, roll]))
    return Rb, target - Rb @ centre


def visible_fraction(cam: SynthCamera, board: Board, pose: tuple[np.ndarray, np.ndarray]) -> float:
    """Share of the board's corners that ``cam`` sees (inside the image, in front of it); 0 when the board
    is seen more than ``MAX_VIEW_ANGLE`` from head-on (an edge-on board shows no usable pattern)."""
    R_cb, t_cb = cam.R @ pose[0], cam.R @ pose[1] + cam.T
    centre = R_cb @ object_points(board).mean(axis=0) + t_cb  # board centre in the camera frame
    cos = abs(float(R_cb[:, 2] @ centre)) / float(np.linalg.norm(centre))
    if cos < np.cos(np.radians(MAX_VIEW_ANGLE)):
        return 0.0
    return float(project_corners(cam, board, pose)[1].mean())


def sample_board_poses(
    rig: SynthRig, world_R0: np.ndarray, pos0: np.ndarray, n_frames: int, seed: int,
    depth: tuple[float, float], visible: tuple[float, float] | None = None,
) -> None:
    """Fill ``rig.board_poses`` with ``n_frames`` poses: distance in ``depth`` (m), tilt <= ~55 deg.

    ``visible=None``: any pose (some boards are partly out of view). ``visible=(lo, hi)``: poses are drawn
    until every camera sees between ``lo`` and ``hi`` of the board's corners. The board's centre is the
    mean of its corners, so a ChArUco board and the chessboard of the same squares get the same poses.
    """
    rng = seeded_generator(seed + 1)
    centre = object_points(rig.board).mean(axis=0)
    poses = []
    for _ in range(n_frames):
        for _try in range(MAX_TRIES):
            Rb, t_world = _random_pose(rng, depth, centre)
            # world -> camera-0 frame
            pose = (world_R0 @ Rb, world_R0 @ (t_world - pos0))
            if visible is None or all(visible[0] <= visible_fraction(c, rig.board, pose) <= visible[1]
                                      for c in rig.cameras):
                break
        else:
            raise ValueError(f"no board pose in {MAX_TRIES} tries lets every camera see {visible[0]:.0%} to "
                             f"{visible[1]:.0%} of the board; widen the range or move the board (depth)")
        poses.append(pose)
    rig.board_poses = poses


def _background(cam_index: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """A smooth random grey texture (h, w) so the board's border has something to stand out from."""
    rng = seeded_generator(seed * 31 + cam_index)
    w, h = size
    small = rng.uniform(70, 160, size=(h // 16 + 1, w // 16 + 1)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _chess_colour(board: Board, qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chessboard colour and board mask (margin included) at board coordinates in squares (corner 0 at 0)."""
    ix, iy = np.floor(qx), np.floor(qy)
    inside_pattern = (ix >= -1) & (ix <= board.cols - 1) & (iy >= -1) & (iy <= board.rows - 1)
    inside_margin = (ix >= -2) & (ix <= board.cols) & (iy >= -2) & (iy <= board.rows)
    colour = np.where(((ix + iy) % 2 == 0) & inside_pattern, np.float32(BLACK), np.float32(WHITE))
    return colour, inside_margin


def _charuco_colour(board: Board, qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ChArUco colour and board mask at board coordinates in squares (square (0, 0) from 0 to 1).

    The marker of a white square occupies its central ``marker/square`` part, split into C x C cells; each
    cell's colour comes from the dictionary (``boards.marker_cells``), so every edge is exact.
    """
    cells = marker_cells(board)  # (rows, cols, C, C)
    c = cells.shape[-1]
    ix, iy = np.floor(qx), np.floor(qy)
    inside_pattern = (ix >= 0) & (ix < board.cols) & (iy >= 0) & (iy < board.rows)
    inside_margin = (ix >= -1) & (ix <= board.cols) & (iy >= -1) & (iy <= board.rows)
    i = np.clip(ix, 0, board.cols - 1).astype(np.intp)
    j = np.clip(iy, 0, board.rows - 1).astype(np.intp)
    ratio = board.marker_size / board.square_size
    u = (qx - ix - (1 - ratio) / 2) / ratio  # position inside the marker, 0..1
    v = (qy - iy - (1 - ratio) / 2) / ratio
    in_marker = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
    cu = np.clip(np.floor(u * c), 0, c - 1).astype(np.intp)
    cv_ = np.clip(np.floor(v * c), 0, c - 1).astype(np.intp)
    black = np.where(in_marker, cells[j, i, cv_, cu], (i + j) % 2 == 0) & inside_pattern
    return np.where(black, np.float32(BLACK), np.float32(WHITE)), inside_margin


def render_view(
    cam: SynthCamera, board: Board, pose: tuple[np.ndarray, np.ndarray], background: np.ndarray,
    blur_sigma: float, noise_std: float, rng: np.random.Generator, ss: int = 3,
) -> np.ndarray:
    """Render one grey uint8 view (h, w) of the board at ``pose`` (board -> reference frame)."""
    R_cb = cam.R @ pose[0]
    t_cb = cam.R @ pose[1] + cam.T
    rays = cam.rays(ss)  # (H, W, 2) float32
    h, w = background.shape
    rx, ry = rays[..., 0], rays[..., 1]
    n = R_cb[:, 2].astype(np.float32)
    # ray (x, y, 1) * s meets the plane n . (P - t) = 0 at s = n.t / n.(x, y, 1)
    denom = n[0] * rx + n[1] * ry + n[2]
    s = np.float32(n @ t_cb) / np.where(np.abs(denom) < 1e-9, np.float32(1e-9), denom)
    px, py, pz = rx * s - t_cb[0], ry * s - t_cb[1], s - t_cb[2]
    inv_sq = 1.0 / board.square_size
    a, b = (R_cb[:, 0] * inv_sq).astype(np.float32), (R_cb[:, 1] * inv_sq).astype(np.float32)
    qx = a[0] * px + a[1] * py + a[2] * pz  # board coords in squares: R^T (P - t) / s
    qy = b[0] * px + b[1] * py + b[2] * pz
    colour, on_board = (_charuco_colour if board.charuco else _chess_colour)(board, qx, qy)
    visible = on_board & (s > 0)
    hi = cv2.resize(background, (w * ss, h * ss), interpolation=cv2.INTER_NEAREST)
    img = np.where(visible, colour, hi)
    img = img.reshape(h, ss, w, ss).mean(axis=(1, 3), dtype=np.float64)
    if blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
    img = img + rng.normal(0, noise_std, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def project_corners(cam: SynthCamera, board: Board,
                    pose: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every corner projected, by id (N, 2), and which of them the camera sees (N,) bool: inside the image
    by 2 px and in front of the camera."""
    obj = object_points(board)
    pc = (cam.R @ (pose[0] @ obj.T + pose[1][:, None]) + cam.T[:, None]).T
    uv = project(pc, cam.K, cam.dist, cam.model)
    w, h = cam.image_size
    inside = (uv[:, 0] > 2) & (uv[:, 0] < w - 3) & (uv[:, 1] > 2) & (uv[:, 1] < h - 3) & (pc[:, 2] > 0.05)
    return uv, inside


def true_corners(cam: SynthCamera, board: Board,
                 pose: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, bool]:
    """Projected inner corners (N, 2) and whether all lie inside the image (and in front of the camera)."""
    uv, inside = project_corners(cam, board, pose)
    return uv, bool(np.all(inside))


def synthetic_rig(
    n_cameras: int = 4, n_frames: int = 40, image_size: tuple[int, int] = (640, 480), seed: int = 0,
    model: str = "pinhole", depth: tuple[float, float] = (0.8, 2.4), board: Board | None = None,
    baseline: float = 0.3, visible: tuple[float, float] | None = None,
) -> SynthRig:
    """A rig with its board poses (the whole ground truth; nothing rendered yet).

    ``visible=(lo, hi)``: every camera sees between ``lo`` and ``hi`` of the board in every frame."""
    rig, world_R0, pos0 = make_rig(n_cameras, image_size, seed, baseline=baseline, model=model, board=board)
    sample_board_poses(rig, world_R0, pos0, n_frames, seed, depth, visible)
    return rig


def write_dataset(
    out: str | Path, rig: SynthRig, mosaic: bool = True, blur_sigma: float = 0.7, noise_std: float = 2.0,
    seed: int = 0, ss: int = 3,
) -> Path:
    """Render every frame of ``rig`` into ``out`` and write ``out/calib.yaml`` and ``out/truth.json``.

    ``mosaic=True``: one 2x2 (or ceil-sqrt grid) image per frame under ``out/fourway/``; otherwise one
    folder per camera under ``out/images/<name>/``. Returns the config path.
    """
    out = Path(out)
    rng = seeded_generator(seed + 7)
    cams = rig.cameras
    w, h = cams[0].image_size
    ncol = int(np.ceil(np.sqrt(len(cams))))
    nrow = int(np.ceil(len(cams) / ncol))
    bgs = [_background(i, c.image_size, seed) for i, c in enumerate(cams)]
    for k, pose in enumerate(rig.board_poses):
        views = [render_view(c, rig.board, pose, bg, blur_sigma, noise_std, rng, ss)
                 for c, bg in zip(cams, bgs, strict=False)]
        if mosaic:
            canvas = np.zeros((nrow * h, ncol * w), np.uint8)
            for i, v in enumerate(views):
                r, c = divmod(i, ncol)
                canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = v
            (out / "fourway").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / "fourway" / f"frame_{k:04d}.png"), canvas)
        else:
            for c, v in zip(cams, views, strict=False):
                (out / "images" / c.name).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out / "images" / c.name / f"frame_{k:04d}.png"), v)
    names = [c.name for c in cams]
    if mosaic:
        # a full grid names its cells by its layout; one with empty cells (3, 5, ... cameras) by crops
        crops = None if nrow * ncol == len(names) else [
            [(i % ncol) * w, (i // ncol) * h, w, h] for i in range(len(names))]
        sources = [Source(type="mosaic", path=out / "fourway", layout=[nrow, ncol], cameras=names,
                          crops=crops)]
    else:
        sources = [Source(type="folder", path=out / "images" / n, camera=n) for n in names]
    cfg = CalibConfig(
        board=rig.board, cameras=[Camera(n, c.model) for n, c in zip(names, cams, strict=False)],
        sources=sources,
        rigs=[Rig(name="rig", reference=names[0], cameras=names)],
        stereo=[StereoPair(left=names[0], right=names[1])] if len(names) > 1 else [],
    )
    atomic_write_text(out / "calib.yaml", dump_config(cfg, out))
    atomic_write_json(out / "truth.json", rig.truth())
    return out / "calib.yaml"


def load_truth(path: str | Path) -> dict[str, dict]:
    """``truth.json`` -> {camera name: {K, dist, R, T (numpy), model, image_size}}."""
    raw = json.loads(Path(path).read_text())
    return {
        c["name"]: {k: (np.array(v) if k in ("K", "dist", "R", "T") else v) for k, v in c.items()}
        for c in raw["cameras"]
    }
