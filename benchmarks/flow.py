"""Optical-flow extraction speed and storage: frames per second of each method on 1 and on all cores, and
bytes per flow frame in each stored format. Farneback on one core is the reference (ratio 1.00).

    .venv/bin/python benchmarks/flow.py --videos 8 --frames 32 --size 128

Flow runs in OpenCV on the CPU whatever ``--device`` says; the device only times the temporal stream's
network on one clip, to set the extraction cost beside the network cost.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deepnotes.core import pick_device
from deepnotes.core.timing import time_call
from deepnotes.video.data.lists import write_list
from deepnotes.video.data.synth import write_mp4
from deepnotes.video.two_stream.flow import METHODS, FlowUnavailable, extract_list, make_flow_fn
from deepnotes.video.untrimmed.synth import make_untrimmed_video


def folder_bytes(folder: Path, suffix: str) -> int:
    return sum(p.stat().st_size for p in folder.rglob(f"*{suffix}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="'all cores' process count")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = []
        for i in range(args.videos):
            half = args.frames // 2
            v = make_untrimmed_video(np.random.default_rng(i), num_frames=args.frames, size=args.size,
                                     instances=(1, 1), action_len=(half, half), idle=(1, 2))
            write_mp4(root / f"v{i}.mp4", v.frames)
            rows.append((f"v{i}.mp4", 0))
        write_list(root / "list.txt", rows)
        n_flow = args.videos * (args.frames - 1)
        print(f"{args.videos} videos x {args.frames} frames of {args.size}x{args.size} ({n_flow} flow "
              f"fields); {os.cpu_count()} cores")
        print(f"{'method':<10} {'workers':>7} {'frames/s':>9} {'ms/frame':>9} {'vs farneback x1':>16}")
        reference = None
        for method in METHODS:
            try:
                make_flow_fn(method)
            except FlowUnavailable as exc:
                print(f"{method:<10} unavailable: {str(exc).split(';')[0]}")
                continue
            for workers in sorted({1, args.workers}):
                out = root / f"flow_{method}_{workers}"
                start = time.perf_counter()
                report = extract_list(root / "list.txt", out, method=method, workers=workers,
                                      formats=("npz",), show_progress=False)
                seconds = time.perf_counter() - start
                assert not report.failed, report.failed
                fps = n_flow / seconds
                reference = reference or fps
                print(f"{method:<10} {workers:>7} {fps:>9.1f} {1e3 / fps:>9.2f} {fps / reference:>15.2f}x")

        print("\nstorage per flow frame (x and y, dis flow, bound 20):")
        out = root / "formats"
        extract_list(root / "list.txt", out, method="dis", workers=1, formats=("jpg", "png", "npz"),
                     show_progress=False)
        raw = args.size * args.size * 2 * 4
        for fmt, suffix in (("jpg", ".jpg"), ("png", ".png"), ("npz", ".npz")):
            per = folder_bytes(out, suffix) / n_flow
            print(f"  {fmt:<4} {per:>9.0f} bytes  ({per / raw:.3f} of float32 {raw} bytes)")

    device = pick_device(args.device)
    from deepnotes.video.models import build_model

    net = build_model("tsn", 10, in_channels=10, num_segments=3, depth=18, width=32, input_size=args.size)
    net = net.to(device)
    x = torch.zeros(1, 10, 3, args.size, args.size, device=device)
    with torch.no_grad():
        ms = time_call(lambda: net(x), device, warmup=2, repeat=5)
    print(f"\ntemporal stream (TSN ResNet-18 w32, 3 segments x 5 flow fields) on {device}: {ms:.1f} ms per "
          f"clip, i.e. {ms / 15:.2f} ms per flow field it consumes")


if __name__ == "__main__":
    main()
