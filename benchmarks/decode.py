"""Sparse decoding: seeking to the keyframe before each wanted frame against decoding every frame up to the
last one. The benchmark writes its own video (H.264 through PyAV's libx264, a keyframe every
``--gop-seconds`` as cameras write them), samples ``--segments`` TSN segments (the test-time centres), and
times in one run:

* ``decode-all``: the frames from 0 to the last sampled one decoded in order (what reading a sparse sample
  cost before), on one thread and with frame/slice threads;
* ``seek``: ``read_video`` as it is now (threaded, seeking), with the packet index read afresh each time
  (the first read of a video) and from the per-process cache (every later epoch).

The ratio seek / decode-all (both threaded, index included) is the figure the goal (<= 0.3) is about. The
script also checks that seeking returns exactly the frames the full decode gives at the same indices.

    .venv/bin/python benchmarks/decode.py                     # 5 minutes of 1280x720 at 30 fps
    .venv/bin/python benchmarks/decode.py --seconds 4 --size 64,96 --fps 10 --repeat 1   # a tiny run

``--device`` is accepted for the shared benchmark runner and ignored: decoding runs on the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from deepnotes.core.config import parse_hw
from deepnotes.video.data import decode, seek
from deepnotes.video.data.decode import read_video
from deepnotes.video.data.sampling import segment_indices


def write_camera_video(path: Path, seconds: float, size: tuple[int, int], fps: int,
                       gop_seconds: float) -> int:
    """A textured scene panning slowly with an object crossing it, H.264 (libx264, B-frames, CABAC, a
    keyframe every ``gop_seconds``); returns the frame count. Frames come from shifting one large texture, so
    making them costs little next to encoding."""
    import av

    h, w = size
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(small, 8, 0), 8, 1)  # blocky texture: cheap to make, real work to encode
    texture = np.concatenate([texture, texture], 1)
    n = int(round(seconds * fps))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width, stream.pix_fmt = h, w, "yuv420p"
        gop = str(max(1, int(round(gop_seconds * fps))))
        # ultrafast keeps a 5-minute 720p video to about a minute of encoding; B-frames, CABAC and the
        # deblocking filter put back what camera streams (main/high profile) make a decoder do
        stream.options = {"preset": "ultrafast", "x264-params": "bframes=2:cabac=1:deblock=0,0", "g": gop,
                          "keyint_min": gop, "sc_threshold": "0", "crf": "23"}
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(n):
            x = (2 * i) % (texture.shape[1] - w)
            frame = np.ascontiguousarray(texture[:h, x:x + w])
            y0, x0 = (i * 3) % max(1, h - h // 6), (i * 5) % max(1, w - w // 6)
            frame[y0:y0 + h // 6, x0:x0 + w // 6] = (255, 128, 0)
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = i
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode())
    return n


def decode_all(path: Path, idx: np.ndarray, threaded: bool) -> np.ndarray:
    """Every frame from 0 to the last of ``idx`` decoded in order, the sampled ones kept (converted to RGB):
    how a sparse sample was read before seeking."""
    import av

    wanted, last, kept = set(idx.tolist()), int(idx.max()), {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if threaded else "SLICE"
        if not threaded:
            stream.codec_context.thread_count = 1
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                kept[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    return np.stack([kept[i] for i in idx.tolist()])


def timed(fn, repeat: int, before=None) -> float:
    """Median seconds of ``fn()`` over ``repeat`` calls (``before()`` runs untimed ahead of each)."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=300.0, help="video length")
    ap.add_argument("--size", default="720,1280", help="H,W of the video")
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--gop-seconds", type=float, default=2.0, help="keyframe interval")
    ap.add_argument("--segments", type=int, default=8, help="TSN segments sampled")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--video", type=Path, help="time this video instead of writing one")
    ap.add_argument("--device", default="cpu", help="ignored: decoding runs on the CPU")
    args = ap.parse_args()
    size = parse_hw(args.size, "--size")
    if min(size) < 16 or size[0] % 2 or size[1] % 2:
        ap.error("--size: H and W must be even and at least 16 (H.264 with 4:2:0 chroma)")

    with tempfile.TemporaryDirectory() as tmp:
        path = args.video or Path(tmp) / "camera.mp4"
        if args.video is None:
            start = time.perf_counter()
            n = write_camera_video(path, args.seconds, size, args.fps, args.gop_seconds)
            print(f"wrote {n} frames of {size[1]}x{size[0]} at {args.fps} fps ({n / args.fps:.0f} s), "
                  f"keyframe every {args.gop_seconds:g} s, {path.stat().st_size / 1e6:.1f} MB in "
                  f"{time.perf_counter() - start:.1f} s")
        run(path, args)


def run(path: Path, args: argparse.Namespace) -> None:
    total = decode.count_frames(path)
    idx = segment_indices(total, args.segments, train=False)
    last = int(idx.max())
    if last < decode.SEEK_MIN_FRAMES:
        print(f"note: the sample ends at frame {last} < SEEK_MIN_FRAMES ({decode.SEEK_MIN_FRAMES}); lowering "
              "the threshold so that seeking is what is timed")
        decode.SEEK_MIN_FRAMES = 0
    # the same frames: seeking returns what the full decode gives at the sampled indices
    if not np.array_equal(read_video(path, idx), decode_all(path, idx, threaded=True)):
        sys.exit("seeking returned frames other than the full decode's")
    fresh = seek._CACHE.clear
    t_all1 = timed(lambda: decode_all(path, idx, threaded=False), args.repeat)
    t_all = timed(lambda: decode_all(path, idx, threaded=True), args.repeat)
    t_seek = timed(lambda: read_video(path, idx), args.repeat, before=fresh)
    t_cached = timed(lambda: read_video(path, idx), args.repeat)
    print(f"{total} frames, {args.segments} segments at {idx.tolist()}; {os.cpu_count()} cores; median of "
          f"{args.repeat}")
    print(f"{'decode-all, 1 thread (before)':<36} {t_all1:8.3f} s")
    print(f"{'decode-all, threaded':<36} {t_all:8.3f} s")
    print(f"{'seek, threaded, index read':<36} {t_seek:8.3f} s")
    print(f"{'seek, threaded, index cached':<36} {t_cached:8.3f} s")
    print(f"ratio seek/decode-all (threaded, index read): {t_seek / t_all:.3f}  (goal <= 0.3)")
    print(f"ratio seek/decode-all 1 thread (before): {t_seek / t_all1:.3f}")


if __name__ == "__main__":
    main()
