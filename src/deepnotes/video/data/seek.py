"""Decoding a sparse set of frames by seeking: jump to the keyframe before each wanted frame instead of
decoding everything from the start (a TSN sample of 8 frames from a 5-minute video decodes 8 GOPs, not the
whole video).

Frame ``i`` means what a full decode means by it: the i-th frame the decoder outputs, i.e. the i-th packet in
presentation-time order. :func:`frame_index` reads that order from the packets alone (demuxing, no decoding:
a pass over the file's bytes), so a wanted frame is known by its timestamp and is recognised exactly when it
comes out of the decoder. Nothing assumes a constant frame rate or timestamps that start at 0. Whatever the
container does on a seek (mp4 seeks by decode time, Matroska by presentation time, MPEG-TS by a search), the
frames that come out are checked against the index: a seek that lands after the wanted frame is retried from
an earlier keyframe, and anything the index cannot explain raises :class:`SeekFailed`, on which the caller
decodes sequentially instead.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class SeekFailed(RuntimeError):
    """Seeking cannot be trusted for this stream (no timestamps, a seek that lands after its target...)."""


@dataclass(frozen=True)
class FrameIndex:
    """The stream's frames in presentation order: ``pts`` (N,) int64 increasing (stream time base),
    ``keyframe`` (N,) bool. Frame ``i`` of a full decode has timestamp ``pts[i]``."""

    pts: np.ndarray
    keyframe: np.ndarray

    def __len__(self) -> int:
        return len(self.pts)

    def keyframe_before(self, i: int) -> int:
        """The last keyframe at or before frame ``i`` (0 when there is none: decode from the start)."""
        keys = np.flatnonzero(self.keyframe[: i + 1])
        return int(keys[-1]) if len(keys) else 0


def frame_index(container, stream) -> FrameIndex:
    """Read every packet of ``stream`` (without decoding) and order them by presentation time.

    Raises :class:`SeekFailed` when packets lack timestamps, share one, or are flagged corrupt: then the
    index could not say which output frame is which.
    """
    pts, key = [], []
    for packet in container.demux(stream):
        if packet.size == 0 and packet.pts is None:
            continue  # the empty packet that flushes the decoder at the end
        if packet.is_discard:
            continue  # decoded as a reference but never output (mp4 edit lists)
        if packet.pts is None or packet.is_corrupt:
            raise SeekFailed("a packet without a timestamp or flagged corrupt")
        pts.append(packet.pts)
        key.append(packet.is_keyframe)
    if not pts:
        raise SeekFailed("no packets")
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    sorted_pts = np.asarray(pts, dtype=np.int64)[order]
    if (np.diff(sorted_pts) <= 0).any():
        raise SeekFailed("two packets share a timestamp")
    return FrameIndex(sorted_pts, np.asarray(key, dtype=bool)[order])


_CACHE: OrderedDict[tuple, FrameIndex] = OrderedDict()
_CACHE_SIZE = 4096  # a few hundred bytes per short clip, ~100 kB for a 5-minute video


def cached_frame_index(path: Path, container, stream) -> FrameIndex:
    """:func:`frame_index`, remembered per file (path, size, modification time) in this process: training
    reads each video every epoch, and the index only changes with the file."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    index = frame_index(container, stream)
    _CACHE[key] = index
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return index


def decode_seeking(container, stream, index: FrameIndex, targets: list[int]) -> dict[int, np.ndarray]:
    """Frames ``targets`` (sorted, unique, each < len(index)) as {i: (H, W, 3) uint8 RGB}.

    Targets are visited in order. From where decoding stands, the next target is reached by decoding on
    when no keyframe lies between (seeking would only restart the same GOP), else by seeking to the keyframe
    before it. Raises :class:`SeekFailed` when the decoded frames do not match the index.
    """
    position = {int(p): i for i, p in enumerate(index.pts)}
    out: dict[int, np.ndarray] = {}
    frames, at = None, -1  # the decoded-frame iterator and the index of the last frame it gave
    for target in targets:
        key = index.keyframe_before(target)
        if frames is None or key > at + 1:
            frames, at = _seek(container, stream, index, position, key, target)
            if at == target:
                out[target] = frames.current.to_ndarray(format="rgb24")
                continue
        for frame in frames:
            at = _position(position, frame)
            if at == target:
                out[target] = frame.to_ndarray(format="rgb24")
                break
            if at > target:
                raise SeekFailed(f"frame {target} was skipped by the decoder (got frame {at})")
        else:
            raise SeekFailed(f"the stream ended before frame {target}")
    return out


class _Frames:
    """Decoded frames from the demuxer's current position; ``current`` is the last one given."""

    def __init__(self, container, stream) -> None:
        self._it = (f for packet in container.demux(stream) for f in packet.decode())
        self.current = None

    def __iter__(self):
        return self

    def __next__(self):
        self.current = next(self._it)
        return self.current


def _position(position: dict[int, int], frame) -> int:
    if frame.pts is None or int(frame.pts) not in position:
        raise SeekFailed(f"a decoded frame has timestamp {frame.pts}, which no packet had")
    return position[int(frame.pts)]


def _seek(container, stream, index: FrameIndex, position: dict[int, int], key: int,
          target: int) -> tuple[_Frames, int]:
    """Seek so that the first decoded frame is at or before ``target``: to keyframe ``key``; when the
    container lands after the target or where nothing decodes (MPEG-TS seeks by a search over the bytes that
    can land past the keyframe), to the keyframe before that one, and so on back to the first; last, to
    byte 0 where the format allows it. Returns the frames (``current`` = the first one) and its index."""
    byte_seek = False
    while True:
        if byte_seek:  # MPEG-TS: the file's first byte is its first packet
            container.seek(0, unsupported_byte_offset=True, stream=stream)
        else:
            container.seek(int(index.pts[key]), backward=True, any_frame=False, stream=stream)
        frames = _Frames(container, stream)
        first = next(frames, None)
        at = None if first is None else _position(position, first)
        if at is not None and at <= target:
            return frames, at
        if byte_seek:
            raise SeekFailed(f"seeking to the start lands at frame {at}, after frame {target}")
        byte_seek = key == 0
        key = index.keyframe_before(key - 1) if key else 0
