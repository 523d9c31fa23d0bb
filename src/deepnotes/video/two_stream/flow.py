"""Dense optical flow: compute it, store it the way flow datasets are usually stored, and read it back.

Storage convention (the one TSN/mmaction2 flow datasets use): for a video with T frames there are T-1 flow
fields; field ``i`` (1-based) is saved as two 8-bit greyscale images ``x_{i:05d}.jpg`` and ``y_{i:05d}.jpg``.
Each component is clipped to ``[-bound, bound]`` pixels and mapped linearly to ``[0, 255]``:

    q = round((clip(f, -b, b) + b) * 255 / (2 b)),      f ~ q * 2 b / 255 - b

so the quantisation step is ``2 b / 255`` (0.157 px for b = 20). JPEG adds its own loss on top; the
compressed ``flow.npz`` (uint8 ``x``, ``y`` of shape (T-1, H, W) and ``bound``) keeps the quantised values
exactly. A ``flow_list.txt`` in the raw-frame list format (``flow_dir num_flow_frames label``) points at the
folders, so the flow dataset and mmaction2-style tools read them directly.

Extraction is resumable: a video's folder is written under a temporary name and renamed into place only
when complete, so a folder with ``flow.json`` inside is done; it is skipped next time unless the video file
(size, modification time), the method or the bound changed.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from deepnotes.core.checkpoint import atomic_write_json, atomic_write_text
from deepnotes.core.paths import resolve_inside
from deepnotes.core.progress import progress
from deepnotes.video.data.decode import read_video
from deepnotes.video.data.lists import read_list

METHODS = ("farneback", "dis", "tvl1")
FORMATS = ("jpg", "png", "npz")
DEFAULT_BOUND = 20.0
FLOW_TMPL = "{}_{:05d}.{}"  # x_00001.jpg, y_00001.jpg (1-based), as mmaction2's filename_tmpl '{}_{:05d}.jpg'
DONE_FILE = "flow.json"
LIST_FILE = "flow_list.txt"
REPORT_FILE = "flow_report.json"

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class FlowUnavailable(RuntimeError):
    """The requested flow method is not in the installed OpenCV."""


def make_flow_fn(method: str) -> FlowFn:
    """A function ``(prev_gray, next_gray) -> flow`` for one method; grey images (H, W) uint8, flow (H, W, 2).

    ``flow[y, x] = (dx, dy)`` maps pixel (x, y) of ``prev`` to (x + dx, y + dy) in ``next``.
    """
    if method == "farneback":
        # Farneback's polynomial expansion with the parameters OpenCV's sample uses for video
        def farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
            return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)

        return farneback
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

        def dis_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
            # the medium preset starts at half resolution, which under-estimates motion on small frames
            # (a 2 px shift reads as 1.6 px at 64x64); small frames get the full-resolution finest scale
            dis.setFinestScale(0 if min(prev.shape[:2]) < 256 else 1)
            return dis.calc(prev, nxt, None)

        return dis_flow
    if method == "tvl1":
        optflow = getattr(cv2, "optflow", None)
        if optflow is None or not hasattr(optflow, "DualTVL1OpticalFlow_create"):
            raise FlowUnavailable(
                f"TV-L1 optical flow needs OpenCV's contrib module cv2.optflow, which the installed OpenCV "
                f"{cv2.__version__} lacks; install opencv-contrib-python-headless (same version) or use "
                "--method dis (closest in quality) or farneback"
            )
        tvl1 = optflow.DualTVL1OpticalFlow_create()

        def tvl1_flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
            return tvl1.calc(prev, nxt, None)

        return tvl1_flow
    raise ValueError(f"unknown flow method {method!r}; valid: {', '.join(METHODS)}")


def compute_flow(frames: np.ndarray, method: str = "dis") -> np.ndarray:
    """Flow between consecutive frames: (T, H, W, 3) RGB or (T, H, W) grey uint8 frames -> (T-1, H, W, 2)
    float32 (x, y) displacements in pixels."""
    if len(frames) < 2:
        raise ValueError(f"optical flow needs at least 2 frames, got {len(frames)}")
    fn = make_flow_fn(method)
    grey = [f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    return np.stack([fn(grey[i], grey[i + 1]) for i in range(len(grey) - 1)]).astype(np.float32)


def quantize_flow(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """float flow (any shape) -> uint8, clipped to +-bound and mapped linearly onto 0..255."""
    q = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.rint(q).astype(np.uint8)


def dequantize_flow(q: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """uint8 (any shape) -> float32 pixels in [-bound, bound]; inverse of :func:`quantize_flow` up to
    2b/255/2."""
    return q.astype(np.float32) * (2 * bound / 255.0) - bound


def flow_image_name(component: str, index: int, ext: str = "jpg") -> str:
    """``x_00001.jpg``: 1-based index of the flow field, component ``x`` or ``y``."""
    return FLOW_TMPL.format(component, index, ext)


def write_flow(out_dir: Path, flow: np.ndarray, bound: float = DEFAULT_BOUND,
               formats: Sequence[str] = ("jpg", "npz")) -> None:
    """Store flow (N, H, W, 2) float in ``out_dir`` as x/y images and/or ``flow.npz``."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"unknown flow format(s) {bad}; valid: {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    q = quantize_flow(flow, bound)
    for ext in formats:
        if ext == "npz":
            np.savez_compressed(out_dir / "flow.npz", x=q[..., 0], y=q[..., 1], bound=np.float32(bound))
            continue
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else []
        for i in range(len(q)):
            for c, comp in enumerate("xy"):
                if not cv2.imwrite(str(out_dir / flow_image_name(comp, i + 1, ext)), q[i, ..., c], params):
                    raise OSError(f"could not write {out_dir / flow_image_name(comp, i + 1, ext)}")


def flow_info(flow_dir: Path) -> dict:
    """The ``flow.json`` of a finished flow folder (frames, height, width, bound, method, formats)."""
    path = Path(flow_dir) / DONE_FILE
    try:
        info = json.loads(path.read_text())
        int(info["frames"]), float(info["bound"]), list(info["formats"])
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path} is missing: {flow_dir} is not a finished flow folder "
                                "(run `deepnotes video flow` again; it resumes)") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is broken ({exc}); delete {flow_dir} and run `deepnotes video flow` "
                         "again") from exc
    return info


def read_flow_quantized(flow_dir: Path, indices: Sequence[int],
                        fmt: str | None = None) -> tuple[np.ndarray, float]:
    """Stored flow fields ``indices`` (0-based) -> (uint8 (len(indices), H, W, 2), bound).

    ``fmt`` picks the stored format (default: npz when present, else the first image format).
    Raises ``ValueError`` naming the file when one is broken or missing.
    """
    flow_dir = Path(flow_dir)
    info = flow_info(flow_dir)
    fmt = fmt or ("npz" if "npz" in info["formats"] else info["formats"][0])
    n = int(info["frames"])
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise ValueError(f"{flow_dir}: flow index {bad[0]} out of range (the folder holds {n} flow fields)")
    if fmt == "npz":
        path = flow_dir / "flow.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                idx = np.asarray(indices, dtype=np.int64)
                q = np.stack([z["x"][idx], z["y"][idx]], axis=-1)
        except Exception as exc:  # zip, key and shape errors all mean the same thing to the user
            raise ValueError(f"broken flow file {path}: {exc}") from exc
        return q, float(info["bound"])
    out = []
    for i in indices:
        pair = []
        for comp in "xy":
            path = flow_dir / flow_image_name(comp, i + 1, fmt)
            img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise ValueError(f"broken or missing flow image {path}")
            pair.append(img)
        if pair[0].shape != pair[1].shape:
            raise ValueError(f"{flow_dir}: x and y images of flow field {i + 1} differ in size")
        out.append(np.stack(pair, axis=-1))
    return np.stack(out), float(info["bound"])


def read_flow(flow_dir: Path, indices: Sequence[int], fmt: str | None = None) -> np.ndarray:
    """Stored flow fields ``indices`` (0-based) -> (len(indices), H, W, 2) float32 pixels."""
    q, bound = read_flow_quantized(flow_dir, indices, fmt)
    return dequantize_flow(q, bound)


# ----------------------------------------------------------------------------------------------- extraction


@dataclass
class ExtractReport:
    """What :func:`extract_list` did: folders written, folders found done, videos that failed and why."""

    written: list[str] = field(default_factory=list)
    skipped_done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds_per_frame: float = 0.0

    def as_dict(self) -> dict:
        return {"written": self.written, "skipped_done": self.skipped_done,
                "failed": [{"video": v, "reason": r} for v, r in self.failed],
                "seconds_per_frame": self.seconds_per_frame}


def flow_dir_name(video: str) -> str:
    """Folder of a video's flow under ``--out``, from the list line's path.

    A plain relative path keeps its layout without the extension (``a/b.mp4`` -> ``a/b``). An absolute path
    or one that climbs with ``..`` cannot be mirrored under ``--out``: its flow goes to
    ``external/<hash>/<name>``, the hash of the path as written keeping two ``clip.mp4`` from different
    folders apart, the name kept last so the two-stream pairing (by file name) still matches it.
    """
    path = Path(video)
    if not path.is_absolute() and ".." not in path.parts:
        return str(path.with_suffix(""))
    digest = hashlib.sha1(str(video).encode("utf-8")).hexdigest()[:12]
    stem = path.with_suffix("").name
    return f"external/{digest}/{stem if stem not in ('', '.', '..') else 'video'}"


def extract_video(video_path: Path, out_dir: Path, method: str = "dis", bound: float = DEFAULT_BOUND,
                  formats: Sequence[str] = ("jpg", "npz")) -> dict:
    """Compute and store the flow of one video into ``out_dir`` (atomically: temp folder, then rename).

    Returns the ``flow.json`` info. Raises ``ValueError`` for videos with fewer than 2 frames.
    """
    import time

    start = time.perf_counter()
    frames = read_video(video_path)
    if len(frames) < 2:
        raise ValueError(f"{video_path}: {len(frames)} frame(s); optical flow needs at least 2")
    flow = compute_flow(frames, method)
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    write_flow(tmp, flow, bound, formats)
    info = {"frames": len(flow), "height": int(flow.shape[1]), "width": int(flow.shape[2]), "bound": bound,
            "method": method, "formats": list(formats), "video": str(video_path),
            "source": _stamp(video_path), "seconds": time.perf_counter() - start}
    (tmp / DONE_FILE).write_text(json.dumps(info, indent=2))
    if out_dir.exists():  # a stale, unfinished folder from an older layout
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return info


def _stamp(video_path: Path) -> list[int]:
    """(size, mtime in ns) of a video: a flow folder made from another version of it is not "done"."""
    st = Path(video_path).stat()
    return [st.st_size, st.st_mtime_ns]


def _is_done(dst: Path, src: Path, method: str, bound: float) -> bool:
    if not (dst / DONE_FILE).is_file():
        return False
    try:
        info = flow_info(dst)
        return (src.is_file() and info.get("source") == _stamp(src) and info.get("method") == method
                and float(info["bound"]) == bound)
    except (ValueError, FileNotFoundError):
        return False


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one process per core: OpenCV's own threads would only fight over them


def _extract_one(args: tuple) -> tuple[str, dict | None, str | None]:
    video, src, dst, method, bound, formats = args
    try:
        return video, extract_video(Path(src), Path(dst), method, bound, formats), None
    except FlowUnavailable:
        raise
    except Exception as exc:  # one bad video must not stop a long extraction: report it and go on
        return video, None, f"{type(exc).__name__}: {exc}"


def extract_list(list_file: Path, out: Path, root: Path | None = None, method: str = "dis",
                 workers: int = 1, bound: float = DEFAULT_BOUND, formats: Sequence[str] = ("jpg", "npz"),
                 show_progress: bool = True) -> ExtractReport:
    """Extract the flow of every video in a ``path label`` list into ``out``, ``workers`` videos at a time in
    worker processes (0 or 1: in this process, as one worker would only add its start-up).

    Videos are read where the list says (an absolute path as it is, a relative one under ``root``, default
    the list's folder); every folder is written under ``out`` (:func:`flow_dir_name`, never beside the
    video). Writes ``out/flow_list.txt`` (``flow_dir num_flow_frames label`` for every video that has flow,
    in list order) and ``out/flow_report.json`` (written, skipped as done, failed with the reason). Videos
    already done are skipped, so re-running after an interruption resumes.
    """
    make_flow_fn(method)  # fail now, before any work, when the method is unavailable
    if bound <= 0:
        raise ValueError(f"--bound must be positive, got {bound}")
    list_file, out = Path(list_file), Path(out)
    # missing files are reported per video below, not a list error; videos are read where the list says
    # (absolute, or relative to root), and every folder is written under out (resolve_inside)
    records = read_list(list_file, root, kind="video", check_files=False)
    items = [(r.entry, r.label) for r in records]
    out.mkdir(parents=True, exist_ok=True)
    report = ExtractReport()
    todo = []
    for record in records:
        video = record.entry
        dst = resolve_inside(out, flow_dir_name(video))
        if _is_done(dst, record.path, method, bound):  # same video file, same settings: nothing to redo
            report.skipped_done.append(video)
        else:
            todo.append((video, str(record.path), str(dst), method, bound, tuple(formats)))
    seconds, frames = 0.0, 0
    if workers <= 1:
        for video, info, err in progress(map(_extract_one, todo), desc=f"flow ({method})", total=len(todo)):
            seconds, frames = _record(report, video, info, err, seconds, frames)
    else:
        # spawn, not fork: a forked child inherits OpenCV's and torch's thread pools in whatever state the
        # parent left them (locks held), and hangs on its first parallel call
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, mp_context=ctx) as pool:
            results = pool.map(_extract_one, todo)
            desc = f"flow ({method}, {workers} workers)"
            for video, info, err in progress(results, desc=desc, total=len(todo)):
                seconds, frames = _record(report, video, info, err, seconds, frames)
    report.seconds_per_frame = seconds / max(frames, 1)
    _write_flow_list(out, items)
    atomic_write_json(out / REPORT_FILE, report.as_dict())
    return report


def _record(report: ExtractReport, video: str, info: dict | None, err: str | None, seconds: float,
            frames: int) -> tuple[float, int]:
    if err is not None:
        report.failed.append((video, err))
        return seconds, frames
    report.written.append(video)
    return seconds + info["seconds"], frames + info["frames"]


def _write_flow_list(out: Path, items: list[tuple[str, int]]) -> None:
    lines = []
    for video, label in items:
        name = flow_dir_name(video)
        done = out / name / DONE_FILE
        if done.is_file():
            lines.append(f"{name} {flow_info(out / name)['frames']} {label}")
    atomic_write_text(out / LIST_FILE, "\n".join(lines) + ("\n" if lines else ""))
