"""Reading frames: PyAV first, OpenCV as fallback; frames folders with an image template.

PyAV decodes with frame and slice threads. A sparse sample that reaches past :data:`SEEK_MIN_FRAMES` seeks to
the keyframe before each wanted frame (:mod:`deepnotes.video.data.seek`) and returns the frames a full decode
gives at the same indices; when seeking cannot be trusted for a file, it decodes from the start.

Every reader returns RGB ``uint8`` arrays of shape (T, H, W, 3) and raises :class:`VideoReadError` for a
corrupt, empty or unreadable file, so callers can skip the sample (training) or report it (eval).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from deepnotes.video.data.seek import cached_frame_index, decode_seeking

DEFAULT_TEMPLATE = "img_{:05d}.jpg"  # mmaction2's raw-frame naming, 1-based
# a sample whose last frame is this far in is read by seeking to the keyframe before each wanted frame;
# closer to the start, decoding from frame 0 costs about as much as reading the packet index
SEEK_MIN_FRAMES = 100

log = logging.getLogger("deepnotes.video")


class VideoReadError(RuntimeError):
    """A video or frame that cannot be decoded; ``path`` says which."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path = Path(path)


def _pyav_frames(path: Path, wanted: set[int] | None) -> list[tuple[int, np.ndarray]]:
    import av

    if wanted and max(wanted) >= SEEK_MIN_FRAMES:
        try:
            with av.open(str(path)) as container:
                return _pyav_seeking(path, container, _threaded(container), wanted)
        except Exception as exc:  # SeekFailed, or a demuxer/decoder error: the plain decode below decides
            log.debug("seeking in %s failed (%s); decoding from the start", path, exc)
    with av.open(str(path)) as container:
        return _pyav_sequential(container, _threaded(container), wanted)


def _threaded(container):
    """The first video stream, set to decode with frame and slice threads (several frames at once)."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _pyav_sequential(container, stream, wanted: set[int] | None) -> list[tuple[int, np.ndarray]]:
    """Decode from the start up to the last wanted frame (all frames when ``wanted`` is None)."""
    out, frame, i = [], None, -1
    last = max(wanted) if wanted else None
    for i, frame in enumerate(container.decode(stream)):
        if wanted is None or i in wanted:
            out.append((i, frame.to_ndarray(format="rgb24")))
        if last is not None and i >= last:
            break
    if frame is not None and (not out or out[-1][0] != i):  # keep the last frame for clamping
        out.append((i, frame.to_ndarray(format="rgb24")))
    return out


def _pyav_seeking(path: Path, container, stream, wanted: set[int]) -> list[tuple[int, np.ndarray]]:
    """The wanted frames by seeking to the keyframe before each (:mod:`.seek`); indices past the end get
    the last frame (for clamping, as the sequential decode gives it)."""
    index = cached_frame_index(path, container, stream)
    n = len(index)
    targets = sorted({i for i in wanted if i < n} | ({n - 1} if max(wanted) >= n else set()))
    return sorted(decode_seeking(container, stream, index, targets).items())


def _cv2_frames(path: Path, wanted: set[int] | None) -> list[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    out, i, prev = [], -1, None
    last = max(wanted) if wanted else None
    try:
        while cap.isOpened():
            ok, bgr = cap.read()
            if not ok:
                break
            i, prev = i + 1, bgr
            if wanted is None or i in wanted:
                out.append((i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            if last is not None and i >= last:
                break
    finally:
        cap.release()
    if prev is not None and (not out or out[-1][0] != i):  # keep the last frame for clamping
        out.append((i, cv2.cvtColor(prev, cv2.COLOR_BGR2RGB)))
    return out


def _decode(path: Path, wanted: set[int] | None) -> list[tuple[int, np.ndarray]]:
    if not path.is_file():
        raise VideoReadError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "file is empty")
    errors = []
    for reader in (_pyav_frames, _cv2_frames):
        try:
            frames = reader(path, wanted)
        except Exception as exc:  # PyAV raises many error types for broken streams; fall back to OpenCV
            errors.append(f"{reader.__name__[1:]}: {exc}")
            continue
        if frames:
            return frames
        errors.append(f"{reader.__name__[1:]}: no frames decoded")
    raise VideoReadError(path, "; ".join(errors))


def count_frames(path: str | Path) -> int:
    """Number of frames: from the container header when it has one (mp4), else from the packets (Matroska,
    MPEG-TS: the frame index seeking uses, read without decoding), else by decoding."""
    path = Path(path)
    try:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            n = stream.frames or len(cached_frame_index(path, container, stream))
        if n > 0:
            return int(n)
    except Exception:  # header and packets unreadable: the full decode below gives the real error or count
        pass
    return len(_decode(path, None))


def read_video(path: str | Path, indices: np.ndarray | list[int] | None = None) -> np.ndarray:
    """Frames ``indices`` (any order, repeats allowed; all frames when None) as (T, H, W, 3) uint8 RGB.

    Indices a few frames past the end (headers can over-count) are clamped to the last decoded frame;
    further past it the file is truncated or corrupt, and that is a :class:`VideoReadError` rather than a
    clip of one frozen frame. So are frames of different sizes (a stream that changes resolution).
    """
    path = Path(path)
    wanted = None if indices is None else {int(i) for i in indices}
    frames = dict(_decode(path, wanted))
    if wanted:
        asked, decoded = max(wanted), max(frames)
        if asked - decoded > max(3, asked // 20):  # a few frames or 5 %: more than headers over-count
            raise VideoReadError(path, f"frame {asked} was asked for but decoding stops after frame "
                                       f"{decoded} (truncated or corrupt file)")
    if len({f.shape for f in frames.values()}) > 1:
        raise VideoReadError(path, "frames have different sizes (the stream changes resolution)")
    if indices is None:
        return np.stack([frames[i] for i in sorted(frames)])
    return np.stack([frames[i if i in frames else _nearest(frames, i)] for i in map(int, indices)])


def _nearest(frames: dict[int, np.ndarray], i: int) -> int:
    return min(frames, key=lambda k: abs(k - i))


def count_frame_files(folder: str | Path, template: str = DEFAULT_TEMPLATE, start_index: int = 1) -> int:
    """How many frames ``folder/template.format(start_index + i)`` exist for i = 0, 1, ... without a gap.

    Counts only the RGB frames: mmaction2's rawframe folders also hold ``flow_x_*``/``flow_y_*`` images.
    """
    folder = Path(folder)
    names = {p.name for p in folder.iterdir()}
    n = 0
    while template.format(start_index + n) in names:
        n += 1
    if n == 0:
        first = template.format(start_index)
        raise VideoReadError(folder, f"no frame named {first!r} (template {template!r}, first index "
                                     f"{start_index}); set --frame-template / --start-index")
    return n


def read_frame_folder(folder: str | Path, indices: np.ndarray | list[int], template: str = DEFAULT_TEMPLATE,
                      start_index: int = 1) -> np.ndarray:
    """Frames ``folder/template.format(i + start_index)`` as (T, H, W, 3) uint8 RGB."""
    out = []
    for i in indices:
        path = Path(folder) / template.format(int(i) + start_index)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VideoReadError(path, "missing or not a readable image")
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if len({f.shape for f in out}) > 1:
        raise VideoReadError(folder, "frames have different sizes")
    return np.stack(out)
