"""Preprocess: turn the config's sources into per-camera frame lists (``frames/index.json``).

* ``mosaic``: a four-way recording (video file or folder of images) laid out as a ``rows x cols`` grid is cut
  into one view per camera (even split or explicit ``crops``); views are written to ``frames/<camera>/``.
* ``video``: one camera's video; frames written to ``frames/<camera>/``.
* ``folder``: one camera's images, listed in place.

Video frames are taken every ``stride`` frames and near-duplicates (mean absolute difference to the last
kept frame below ``duplicate_threshold`` grey levels, on a 1/4-size copy) are dropped. Frames pair up
across cameras by their id (the file stem, or ``f<index>`` for videos): the rig step needs that.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from deepnotes.calib.config import CalibConfig, ConfigError, Source
from deepnotes.core.checkpoint import atomic_write_bytes, atomic_write_json
from deepnotes.core.progress import progress

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder``, sorted by name."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise ConfigError(f"{folder}: no images ({', '.join(IMAGE_EXTS)}) found")
    return files


def read_gray(path: Path) -> np.ndarray:
    """Read an image as grey uint8 (h, w); a clear error naming the file when it cannot be read."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"{path}: cannot read this image (missing, truncated or not an image)")
    return img


def iter_video(path: Path, stride: int) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(frame id, grey frame)`` for every ``stride``-th frame of a video."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: cannot open this video (missing file or unsupported codec)")
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % stride == 0:
                yield f"f{index:06d}", cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
            index += 1
    finally:
        cap.release()
    if index == 0:
        raise ValueError(f"{path}: the video has no readable frames")


def iter_source_frames(source: Source, stride: int) -> Iterator[tuple[str, np.ndarray | Path]]:
    """Frames of a mosaic/video source as arrays, or of an image folder as paths."""
    if source.path.is_dir():
        for p in list_images(source.path):
            yield p.stem, p
    else:
        yield from iter_video(source.path, stride)


def crop_rects(source: Source, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Per-view rectangles ``(x, y, w, h)`` of a mosaic frame of size ``width x height``, row-major."""
    if source.crops is not None:
        rects = [tuple(r) for r in source.crops]
    else:
        rows, cols = source.layout
        if width % cols or height % rows:
            raise ValueError(
                f"{source.path}: frame size {width}x{height} does not split evenly into layout "
                f"{source.layout}; give explicit crops: [[x, y, w, h], ...]"
            )
        w, h = width // cols, height // rows
        rects = [(c * w, r * h, w, h) for r in range(rows) for c in range(cols)]
    for i, (x, y, w, h) in enumerate(rects):
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > width or y + h > height:
            raise ValueError(f"{source.path}: crop {i} {[x, y, w, h]} lies outside the {width}x{height} "
                             "frame")
    return rects


def split_mosaic(img: np.ndarray, rects: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
    """Cut the views out of one mosaic frame."""
    return [img[y:y + h, x:x + w] for x, y, w, h in rects]


class _Dedup:
    """Keeps a frame unless it is nearly identical to the last kept one (recording paused, board static)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.last: np.ndarray | None = None
        self.dropped = 0

    def keep(self, img: np.ndarray) -> bool:
        quarter = (max(1, img.shape[1] // 4), max(1, img.shape[0] // 4))
        small = cv2.resize(img, quarter, interpolation=cv2.INTER_AREA)
        small = small.astype(np.float32)
        if self.last is not None and self.last.shape == small.shape:
            if float(np.mean(np.abs(small - self.last))) < self.threshold:
                self.dropped += 1
                return False
        self.last = small
        return True


def _write_png(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError(f"{path}: could not encode frame")
    atomic_write_bytes(path, buf.tobytes())


def split_sources(cfg: CalibConfig, out: Path) -> dict[str, list[dict]]:
    """Run the preprocess step; writes ``out/frames/index.json`` = {camera: [{frame, path}]}, returns it."""
    out = Path(out)
    index: dict[str, list[dict]] = {c.name: [] for c in cfg.cameras}
    stats: dict[str, int] = {"duplicates_dropped": 0}
    for source in cfg.sources:
        dedup = _Dedup(cfg.frames.duplicate_threshold)
        frames = iter_source_frames(source, cfg.frames.stride)
        for frame_id, item in progress(frames, desc=f"split {source.path.name}"):
            if source.type == "folder":
                index[source.camera].append({"frame": frame_id, "path": str(Path(item).resolve())})
                continue
            img = read_gray(item) if isinstance(item, Path) else item
            if source.path.is_file() and not dedup.keep(img):
                continue
            if source.type == "video":
                views = {source.camera: img}
            else:
                rects = crop_rects(source, img.shape[1], img.shape[0])
                views = dict(zip(source.cameras, split_mosaic(img, rects), strict=False))
            for cam, view in views.items():
                path = out / "frames" / cam / f"{frame_id}.png"
                _write_png(path, view)
                index[cam].append({"frame": frame_id, "path": str(path.resolve())})
        stats["duplicates_dropped"] += dedup.dropped
    atomic_write_json(out / "frames" / "index.json", {"cameras": index, "stats": stats})
    return index


def load_index(out: Path) -> dict[str, list[dict]]:
    """Read ``out/frames/index.json`` (written by :func:`split_sources`)."""
    path = Path(out) / "frames" / "index.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `deepnotes calib split CONFIG --out {out}` first")
    return json.loads(path.read_text())["cameras"]
