"""Board detection on all cores: chessboards with an adaptive ``cornerSubPix`` window, ChArUco boards with
OpenCV's ``aruco.CharucoDetector`` (any part of the board with at least 6 corners and their ids), a cache.

Why adaptive: ``cornerSubPix`` treats every gradient inside its window as an edge through the corner. When
the window reaches the next corner's edges (small or slanted boards: squares of 8-15 px), the estimate is
pulled by pixels; the notes' fixed window is then the dominant error of the whole calibration. We take each
corner's half-window from the distance to its grid neighbours: ``half = clip(floor(0.35 d), 2, 12)``
(``d`` the shortest neighbour distance in pixels) so the window never covers a neighbour's edges.

``search="fast"`` (the pipeline's default, ``detect.search``) finds a ChArUco board's markers with one
adaptive-threshold window before OpenCV's three (:func:`find_charuco`), and a chessboard in two cheap
passes: a global threshold on the full image, then OpenCV's adaptive thresholds on a half-size copy
(corners refined at full size). OpenCV's own adaptive search on the full image (``thorough``) spends ~50 ms
on each frame without a whole board before giving up, ~10x a found board's cost, and such frames were a
sixth of the benchmark rig's views. The fast passes miss boards whose squares are both too small for the
half-size copy and too unevenly lit for one threshold (3 of 136 views of the 40-frame benchmark rig; they
found 3 far boards the adaptive search missed in another rendered set).

Views that cannot count are named with a reason that starts with its kind: ``unreadable``, ``blank`` (a
near-uniform frame: lens cap, a dark start of a recording, found on a 1/8-size copy before any detection),
``blurred`` or ``no board``.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from deepnotes.calib.boards import charuco_board, charuco_detector
from deepnotes.calib.config import MIN_CHARUCO_CORNERS, Board
from deepnotes.core.checkpoint import atomic_write_json
from deepnotes.core.progress import progress

SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 40, 1e-3)
WINDOW_FACTOR, WINDOW_MIN, WINDOW_MAX = 0.35, 2, 12
BLANK_STD = 2.0  # grey levels: below this spread on a 1/8-size copy the frame shows nothing


@dataclass
class Detection:
    """One image's result. ``corners``: (cols*rows, 2) pixel list, row-major from corner 0, or None."""

    frame: str
    path: str
    found: bool
    image_size: tuple[int, int] | None = None  # (w, h)
    corners: list[list[float]] | None = None
    n_found: int = 0  # corners seen, also when the board was not found (a wrong board size shows here)
    window: float = 0.0  # mean cornerSubPix half-size used
    reason: str = ""
    ids: list[int] | None = None  # ChArUco: the id of each corner (ascending); None: all corners, in order

    def corner_ids(self) -> np.ndarray:
        """Ids of ``corners`` (N,): the stored ones, or 0..N-1 for a whole chessboard."""
        return np.asarray(self.ids if self.ids is not None else range(len(self.corners or [])), np.intp)


def neighbour_distance(corners: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Per corner, the shortest pixel distance to a grid neighbour: (rows*cols, 2) corners -> (rows*cols,)."""
    g = corners.reshape(rows, cols, 2)
    d = np.full((rows, cols), np.inf)
    dx = np.linalg.norm(np.diff(g, axis=1), axis=2)
    dy = np.linalg.norm(np.diff(g, axis=0), axis=2)
    d[:, :-1] = np.minimum(d[:, :-1], dx)
    d[:, 1:] = np.minimum(d[:, 1:], dx)
    d[:-1, :] = np.minimum(d[:-1, :], dy)
    d[1:, :] = np.minimum(d[1:, :], dy)
    return d.ravel()


def adaptive_halfwindows(corners: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Half-sizes (int, per corner) from the local square size in pixels."""
    d = neighbour_distance(corners, cols, rows)
    return np.clip(np.floor(WINDOW_FACTOR * d), WINDOW_MIN, WINDOW_MAX).astype(int)


def refine_corners(gray: np.ndarray, corners: np.ndarray, cols: int, rows: int,
                   window: str | int) -> tuple[np.ndarray, float]:
    """``cornerSubPix`` with a fixed half-size (int) or per-corner adaptive ones; (N, 2) and the mean half."""
    pts = corners.reshape(-1, 1, 2).astype(np.float32)
    if window != "adaptive":
        w = int(window)
        return cv2.cornerSubPix(gray, pts, (w, w), (-1, -1), SUBPIX_CRITERIA).reshape(-1, 2), float(w)
    halves = adaptive_halfwindows(pts.reshape(-1, 2), cols, rows)
    out = pts.copy()
    for h in np.unique(halves):
        idx = np.flatnonzero(halves == h)
        out[idx] = cv2.cornerSubPix(gray, pts[idx].copy(), (int(h), int(h)), (-1, -1), SUBPIX_CRITERIA)
    return out.reshape(-1, 2), float(halves.mean())


def canonical_order(gray: np.ndarray, corners: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Reverse the corner order when the board was read rotated by 180 degrees.

    Convention: the square outside corner 0 is black. With one odd and one even dimension, the square
    outside the last corner is white, so comparing the two tells the orientation.
    """
    if (cols + rows) % 2 == 0:  # symmetric board: the orientation cannot be told from colours
        return corners
    g = corners.reshape(rows, cols, 2)

    def outside(c: np.ndarray, diag: np.ndarray) -> float:
        p = c + 0.5 * (c - diag)
        x = int(np.clip(round(p[0]), 0, gray.shape[1] - 1))
        y = int(np.clip(round(p[1]), 0, gray.shape[0] - 1))
        return float(gray[y, x])

    first = outside(g[0, 0], g[1, 1])
    last = outside(g[-1, -1], g[-2, -2])
    return corners[::-1].copy() if first > last else corners


def screen(path: str, frame: str, blur_threshold: float) -> tuple[np.ndarray | None, Detection | None]:
    """Read an image and reject it before any detection: (grey image, None) or (None, the reason)."""
    gray = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if gray is None:
        return None, Detection(frame, path, False, reason="unreadable image")
    size = (gray.shape[1], gray.shape[0])
    small = cv2.resize(gray, (max(1, size[0] // 8), max(1, size[1] // 8)), interpolation=cv2.INTER_AREA)
    spread = float(cv2.meanStdDev(small)[1][0, 0])
    if spread < BLANK_STD:  # averaging 8x8 pixels removes the sensor noise a blank frame still has
        return None, Detection(frame, path, False, size,
                               reason=f"blank image (grey levels spread {spread:.1f})")
    # the 3x3 Laplacian of uint8 fits int16 exactly; its variance as in float64, 6x faster
    sharpness = float(cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_16S))[1][0, 0] ** 2)
    if sharpness < blur_threshold:
        return None, Detection(frame, path, False, size,
                               reason=f"blurred (variance of Laplacian {sharpness:.1f})")
    return gray, None


def draw_corners(gray: np.ndarray, pts: np.ndarray, ids: np.ndarray,
                 grid: tuple[int, int] | None = None) -> np.ndarray:
    """A BGR copy of a view with its corners (N, 2) and their ids (N,) drawn, and the chessboard's grid
    lines when ``grid`` (a whole chessboard's (cols, rows)) is given."""
    vis = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if grid is not None:
        cv2.drawChessboardCorners(vis, grid, pts.reshape(-1, 1, 2).astype(np.float32), True)
    cv2.aruco.drawDetectedCornersCharuco(vis, pts.reshape(-1, 1, 2).astype(np.float32),
                                         ids.reshape(-1, 1).astype(np.int32), (0, 0, 255))
    return vis


def _write_overlay(overlay: str, gray: np.ndarray, pts: np.ndarray, ids: np.ndarray,
                   grid: tuple[int, int] | None) -> None:
    Path(overlay).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(overlay, draw_corners(gray, pts, ids, grid))


def find_chessboard(gray: np.ndarray, cols: int, rows: int,
                    search: str = "thorough") -> tuple[bool, np.ndarray | None]:
    """``cv2.findChessboardCorners`` (adaptive thresholds) on the full image, or with ``search="fast"`` the
    two cheap passes of the module doc. Returns (found, corners (N, 1, 2) float32 or None)."""
    adaptive = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    if search == "thorough":
        return cv2.findChessboardCorners(gray, (cols, rows), flags=adaptive)
    found, pts = cv2.findChessboardCorners(gray, (cols, rows), flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
    if found:
        return found, pts
    h, w = gray.shape
    half = cv2.resize(gray, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    found_half, pts_half = cv2.findChessboardCorners(half, (cols, rows), flags=adaptive)
    if found_half:  # pixel centres: full = 2 * half + 0.5 for a 2x2 area average
        return True, (pts_half * 2 + 0.5).astype(np.float32)
    seen = [p for p in (pts, pts_half) if p is not None]
    return False, max(seen, key=len) if seen else None


def detect_image(
    path: str, frame: str, cols: int, rows: int, detector: str = "classic", window: str | int = "adaptive",
    blur_threshold: float = 0.0, overlay: str | None = None, search: str = "thorough",
) -> Detection:
    """Detect the chessboard in one image file (never raises on a bad image: the reason says what
    happened). ``search``: ``thorough`` or ``fast`` (classic detector only, see the module doc)."""
    gray, rejected = screen(path, frame, blur_threshold)
    if rejected is not None:
        return rejected
    size = (gray.shape[1], gray.shape[0])
    if detector == "sb":
        found, pts = cv2.findChessboardCornersSB(gray, (cols, rows), flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
    else:
        found, pts = find_chessboard(gray, cols, rows, search)
    n_found = 0 if pts is None else len(pts)
    if not found:
        fast = search == "fast" and detector == "classic"
        hint = "; a small board may need detect.search: thorough" if fast else ""
        return Detection(frame, path, False, size, n_found=n_found,
                         reason=f"no board ({n_found} corners seen{hint})")
    pts = pts.reshape(-1, 2)
    mean_half = 0.0
    if detector == "classic":
        pts, mean_half = refine_corners(gray, pts, cols, rows, window)
    pts = canonical_order(gray, pts, cols, rows)
    if overlay:
        _write_overlay(overlay, gray, pts, np.arange(len(pts)), (cols, rows))
    return Detection(frame, path, True, size, pts.astype(float).round(4).tolist(), n_found, mean_half)


def find_charuco(gray: np.ndarray, board: Board, search: str = "thorough") -> tuple:
    """``CharucoDetector.detectBoard``: (corners (n, 1, 2), ids (n, 1), marker count). ``search="fast"``
    first tries one threshold window (``boards.charuco_detector(fast=True)``); OpenCV's full marker search
    follows only when that pass saw markers but too few corners. A frame where it saw no marker at all is
    rejected then (board-less frames cost ~1.5 ms instead of ~4 ms)."""
    if search == "fast":
        corners, ids, _, markers = charuco_detector(board, fast=True).detectBoard(gray)
        n_markers = 0 if markers is None else len(markers)
        if n_markers == 0 or (ids is not None and len(ids) >= MIN_CHARUCO_CORNERS):
            return corners, ids, n_markers
    corners, ids, _, markers = charuco_detector(board).detectBoard(gray)
    return corners, ids, 0 if markers is None else len(markers)


def detect_charuco(path: str, frame: str, board: Board, blur_threshold: float = 0.0,
                   overlay: str | None = None, search: str = "thorough") -> Detection:
    """Detect a ChArUco board, whole or in part, in one image file: the corners OpenCV's
    ``CharucoDetector`` finds (refined by it), sorted by id. A view counts with at least
    ``MIN_CHARUCO_CORNERS`` corners that do not all lie on one line (a line fixes no pose).
    ``search``: see :func:`find_charuco`."""
    gray, rejected = screen(path, frame, blur_threshold)
    if rejected is not None:
        return rejected
    size = (gray.shape[1], gray.shape[0])
    corners, ids, n_markers = find_charuco(gray, board, search)
    n = 0 if ids is None else len(ids)
    if n < MIN_CHARUCO_CORNERS:
        return Detection(frame, path, False, size, n_found=n,
                         reason=f"no board ({n} ChArUco corners seen, {n_markers} markers; need "
                                f"{MIN_CHARUCO_CORNERS} corners)")
    if charuco_board(board).checkCharucoCornersCollinear(ids):
        return Detection(frame, path, False, size, n_found=n,
                         reason=f"no board (its {n} corners lie on one line)")
    order = np.argsort(ids.ravel())
    pts, ids = corners.reshape(-1, 2)[order].astype(float), ids.ravel()[order]
    if overlay:
        _write_overlay(overlay, gray, pts, ids, None)
    return Detection(frame, path, True, size, pts.round(4).tolist(), n, ids=[int(i) for i in ids])


def _job(args: tuple) -> Detection:
    if isinstance(args[2], Board):
        return detect_charuco(*args)
    return detect_image(*args)


def _signature(cols: int, rows: int, detector: str, window: str | int, blur: float,
               board: Board | None = None, search: str = "thorough") -> str:
    settings = [cols, rows, detector, str(window), blur, WINDOW_FACTOR, BLANK_STD, search]
    if board is not None and board.charuco:
        settings = ["charuco", board.cols, board.rows, board.square_size, board.marker_size, board.dictionary,
                    blur, BLANK_STD, search, cv2.__version__]
    return hashlib.sha1(json.dumps(settings).encode()).hexdigest()[:12]


_PARSED: dict[str, tuple[str, dict]] = {}  # cache path -> (its file key, parsed JSON): every step rereads it


def _read_cache(cache: Path) -> dict | None:
    """The parsed detection cache, reusing the last parse while the file is unchanged (size, mtime)."""
    if not cache.is_file():
        return None
    key = _file_key(str(cache))
    hit = _PARSED.get(str(cache))
    if hit is None or hit[0] != key:
        hit = (key, json.loads(cache.read_text()))
        _PARSED[str(cache)] = hit
    return hit[1]


def _file_key(path: str) -> str:
    st = os.stat(path)
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def detect_camera(
    frames: list[dict], cols: int, rows: int, detector: str, window: str | int, blur_threshold: float,
    cache: Path | None = None, overlay_dir: Path | None = None, workers: int | None = None,
    desc: str = "detect", board: Board | None = None, search: str = "thorough",
) -> list[Detection]:
    """Detect every frame of one camera (``frames``: [{frame, path}]) in a thread pool; cached per file.

    ``workers``: threads; None = one per core, 0 = one after the other in this thread. ``board``: the
    config's board; a ChArUco board is detected with :func:`detect_charuco` (``cols``, ``rows``,
    ``detector`` and ``window`` then play no part), a chessboard with :func:`detect_image` (``search``).

    The cache (JSON) is keyed by file path, size and mtime and by the detection settings, so a rerun only
    looks at new or changed images.
    """
    charuco = board is not None and board.charuco
    sig = _signature(cols, rows, detector, window, blur_threshold, board, search)
    cached: dict[str, dict] = {}
    raw = _read_cache(cache) if cache is not None else None
    if raw is not None and raw.get("signature") == sig:
        cached = raw.get("entries", {})
    results: dict[int, Detection] = {}
    todo = []
    for i, f in enumerate(frames):
        key = _file_key(f["path"]) if os.path.exists(f["path"]) else None
        if key is not None and key in cached:
            size = tuple(cached[key]["image_size"] or ()) or None
            results[i] = Detection(**{**cached[key], "image_size": size})
            continue
        ov = str(overlay_dir / f"{f['frame']}.jpg") if overlay_dir is not None else None
        args = ((f["path"], f["frame"], board, blur_threshold, ov, search) if charuco else
                (f["path"], f["frame"], cols, rows, detector, window, blur_threshold, ov, search))
        todo.append((i, args))
    n_workers = (os.cpu_count() or 1) if workers is None else workers
    if todo:
        if n_workers > 0 and len(todo) > 1:
            # threads, not processes: OpenCV releases the GIL inside imread, findChessboardCorners and
            # cornerSubPix, so threads use every core; forked processes can hang on OpenCV's inherited
            # thread pool and spawned ones would need a __main__ guard in every user script
            with ThreadPoolExecutor(max_workers=min(n_workers, len(todo))) as pool:
                mapped = pool.map(_job, [a for _, a in todo])
                for (i, _), det in progress(zip(todo, mapped, strict=False), desc=desc, total=len(todo)):
                    results[i] = det
        else:
            for i, args in progress(todo, desc=desc):
                results[i] = _job(args)
    ordered = [results[i] for i in range(len(frames))]
    if cache is not None and (todo or len(cached) != len(ordered)):  # a later step rereads an unchanged cache
        # a shallow dict per detection: asdict's deep copy of every corner list cost more than the write
        entries = {_file_key(d.path): {f.name: getattr(d, f.name) for f in fields(d)}
                   for d in ordered if os.path.exists(d.path)}
        atomic_write_json(cache, {"signature": sig, "entries": entries})
        _PARSED.pop(str(cache), None)
    return ordered
