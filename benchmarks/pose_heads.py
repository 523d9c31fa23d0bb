"""Images per second of each pose head at one input size, side by side (heatmap head = the reference).

    .venv/bin/python benchmarks/pose_heads.py --device cpu --input-size 256,192 --batch-size 16 [--threads 1]

The RLE model is timed with its flow removed (what inference runs); FLOPs by torch's flop counter. The
models are timed in interleaved rounds (one call each per round, median over rounds), so a load spike on a
shared machine hits all of them alike rather than whichever ran at the time.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from deepnotes.core import pick_device
from deepnotes.core.config import ConfigError, parse_hw
from deepnotes.core.timing import count_flops, time_call
from deepnotes.pose.model import PoseConfig, PoseModel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--input-size", default="256,192", help="H,W (one number: a square)")
    ap.add_argument("--heatmap-size", default="64,48", help="H,W of the heatmap head (one number: a square)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--depth", type=int, default=18)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--deconv-channels", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    try:  # the sizes' one syntax: H,W, or one number for a square
        input_hw = parse_hw(args.input_size, "--input-size")
        heatmap_hw = parse_hw(args.heatmap_size, "--heatmap-size")
    except ConfigError as exc:
        ap.error(str(exc))
    x = torch.randn(args.batch_size, 3, *input_hw, device=device)
    models, feats = {}, {}
    for head in ("heatmap", "regression", "rle"):
        cfg = PoseConfig(head=head, input_hw=input_hw, heatmap_hw=heatmap_hw, depth=args.depth,
                         width=args.width, stages=4, deconv_channels=args.deconv_channels)
        try:
            models[head] = PoseModel(cfg).to(device).eval()
        except ValueError as exc:  # e.g. a heatmap size the deconvolutions cannot reach
            ap.error(str(exc))
        if head == "rle":
            models[head].head.strip_flow()
        with torch.no_grad():
            feats[head] = models[head].backbone(x)
    times: dict[str, list[float]] = {h: [] for h in models}
    head_times: dict[str, list[float]] = {h: [] for h in models}
    with torch.no_grad():
        for _ in range(args.repeat):
            for head, model in models.items():
                times[head].append(time_call(lambda m=model: m(x), device, warmup=1, repeat=1))
                head_times[head].append(time_call(lambda m=model, f=feats[head]: m.head(f), device, warmup=1,
                                                  repeat=1))
    rows = []
    for head, model in models.items():
        ms, head_ms = statistics.median(times[head]), statistics.median(head_times[head])
        flops = count_flops(model.cpu(), x[:1].cpu()) / 1e9
        head_flops = count_flops(model.head, feats[head][:1].cpu()) / 1e9
        rows.append((head, args.batch_size / ms * 1e3, ms, head_ms, flops, head_flops))
    ref = rows[0]
    print(f"device {device}, input {input_hw}, batch {args.batch_size}, ResNet-{args.depth} width "
          f"{args.width}, heatmap {heatmap_hw} with {args.deconv_channels} deconv channels, torch threads "
          f"{torch.get_num_threads()}")
    print(f"{'head':11s} {'img/s':>9s} {'x heatmap':>9s} {'batch ms':>9s} {'head ms':>8s} "
          f"{'GFLOPs/img':>10s} {'head MFLOPs':>11s}")
    for head, ips, ms, hms, fl, hfl in rows:
        print(f"{head:11s} {ips:9.1f} {ips / ref[1]:9.2f} {ms:9.2f} {hms:8.2f} {fl:10.3f} {hfl * 1e3:11.3f}")


if __name__ == "__main__":
    main()
