"""Chessboard corner detection on all cores, with an adaptive ``cornerSubPix`` window and a cache.

Why adaptive: ``cornerSubPix`` treats every gradient inside its window as an edge through the corner. When
the window reaches the next corner's edges (small or slanted boards: squares of 8-15 px), the estimate is
pulled by pixels; the notes' fixed window is then the dominant error of the whole calibration. We take each
corner's half-window from the distance to its grid neighbours: ``half = clip(floor(0.35 d), 2, 12)``
(``d`` the shortest neighbour distance in pixels) so the window never covers a neighbour's edges.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from deepnotes.core.checkpoint import atomic_write_json
from deepnotes.core.progress import progress

SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 40, 1e-3)
WINDOW_FACTOR, WINDOW_MIN, WINDOW_MAX = 0.35, 2, 12


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


def detect_image(
    path: str, frame: str, cols: int, rows: int, detector: str = "classic", window: str | int = "adaptive",
    blur_threshold: float = 0.0, overlay: str | None = None,
) -> Detection:
    """Detect the board in one image file (never raises on a bad image: the reason says what happened)."""
    gray = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if gray is None:
        return Detection(frame, path, False, reason="unreadable image")
    size = (gray.shape[1], gray.shape[0])
    sharpness = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    if sharpness < blur_threshold:
        return Detection(frame, path, False, size, reason=f"blurred (variance of Laplacian {sharpness:.1f})")
    if detector == "sb":
        found, pts = cv2.findChessboardCornersSB(gray, (cols, rows), flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
    else:
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
        found, pts = cv2.findChessboardCorners(gray, (cols, rows), flags=flags)
    n_found = 0 if pts is None else len(pts)
    if not found:
        return Detection(frame, path, False, size, n_found=n_found,
                         reason=f"no board ({n_found} corners seen)")
    pts = pts.reshape(-1, 2)
    mean_half = 0.0
    if detector == "classic":
        pts, mean_half = refine_corners(gray, pts, cols, rows, window)
    pts = canonical_order(gray, pts, cols, rows)
    if overlay:
        vis = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        cv2.drawChessboardCorners(vis, (cols, rows), pts.reshape(-1, 1, 2).astype(np.float32), True)
        Path(overlay).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(overlay, vis)
    return Detection(frame, path, True, size, pts.astype(float).round(4).tolist(), n_found, mean_half)


def _job(args: tuple) -> Detection:
    return detect_image(*args)


def _signature(cols: int, rows: int, detector: str, window: str | int, blur: float) -> str:
    settings = [cols, rows, detector, str(window), blur, WINDOW_FACTOR]
    return hashlib.sha1(json.dumps(settings).encode()).hexdigest()[:12]


def _file_key(path: str) -> str:
    st = os.stat(path)
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def detect_camera(
    frames: list[dict], cols: int, rows: int, detector: str, window: str | int, blur_threshold: float,
    cache: Path | None = None, overlay_dir: Path | None = None, workers: int | None = None,
    desc: str = "detect",
) -> list[Detection]:
    """Detect every frame of one camera (``frames``: [{frame, path}]) in a thread pool; cached per file.

    ``workers``: threads; None = one per core, 0 = one after the other in this thread.

    The cache (JSON) is keyed by file path, size and mtime and by the detection settings, so a rerun only
    looks at new or changed images.
    """
    sig = _signature(cols, rows, detector, window, blur_threshold)
    cached: dict[str, dict] = {}
    if cache is not None and cache.is_file():
        raw = json.loads(cache.read_text())
        if raw.get("signature") == sig:
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
        todo.append((i, (f["path"], f["frame"], cols, rows, detector, window, blur_threshold, ov)))
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
    if cache is not None:
        entries = {_file_key(d.path): asdict(d) for d in ordered if os.path.exists(d.path)}
        atomic_write_json(cache, {"signature": sig, "entries": entries})
    return ordered
