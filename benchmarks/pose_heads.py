"""Images per second of each pose head at one input size, side by side (heatmap head = the reference).

    .venv/bin/python benchmarks/pose_heads.py --device cpu --input-size 256,192 --batch-size 16 [--threads 1]

``--backbones HEAD`` compares backbone shapes for that head instead (``--stem-stride`` and ``--stages`` of
``pose train``): inference and training-step time, FLOPs, feature map and channels of each, side by side
with the 4x stem and 3 stages that ``pose train`` used before issue 23 as the reference:

    .venv/bin/python benchmarks/pose_heads.py --device cpu --input-size 64,48 --heatmap-size 16,12 \
        --width 16 --batch-size 32 --backbones regression --threads 1

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
from deepnotes.core.timing import count_flops, time_call, time_interleaved
from deepnotes.pose.model import PoseConfig, PoseModel

# (stem stride, stages): the old default first (the reference), then the variants pose train offers
BACKBONES = ((4, 3), (2, 3), (2, 4), (4, 4), (1, 4))


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
    ap.add_argument("--backbones", choices=("heatmap", "regression", "rle"), default=None,
                    help="compare stem strides and stage counts for this head instead of the heads")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    try:  # the sizes' one syntax: H,W, or one number for a square
        input_hw = parse_hw(args.input_size, "--input-size")
        heatmap_hw = parse_hw(args.heatmap_size, "--heatmap-size")
    except ConfigError as exc:
        ap.error(str(exc))
    if args.backbones:
        compare_backbones(args, device, input_hw, heatmap_hw)
        return
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


def _train_step(model: PoseModel, x: torch.Tensor, keypoints: torch.Tensor, weight: torch.Tensor):
    """One forward and backward pass (what a training step costs without the optimizer)."""
    model.zero_grad(set_to_none=True)
    model.loss(model(x), keypoints, weight)["loss"].backward()


def compare_backbones(args, device, input_hw, heatmap_hw) -> None:
    """Inference and training-step times of ``args.backbones`` on each backbone of :data:`BACKBONES`."""
    x = torch.randn(args.batch_size, 3, *input_hw, device=device)
    size = torch.tensor(input_hw[::-1], device=device, dtype=torch.float32)
    keypoints = torch.rand(args.batch_size, 17, 2, device=device) * size
    weight = torch.ones(args.batch_size, 17, device=device)
    models, skipped = {}, []
    for stem, stages in BACKBONES:
        cfg = PoseConfig(head=args.backbones, input_hw=input_hw, heatmap_hw=heatmap_hw, depth=args.depth,
                         width=args.width, stages=stages, stem_stride=stem,
                         deconv_channels=args.deconv_channels)
        try:
            models[(stem, stages)] = PoseModel(cfg).to(device)
        except ValueError:  # a heatmap size this backbone's deconvolutions cannot reach
            skipped.append(f"stem {stem} / {stages} stages")
    infer = {k: (lambda m=m: m.eval()(x)) for k, m in models.items()}
    with torch.no_grad():
        infer_ms = time_interleaved(infer, device, warmup=1, rounds=args.repeat)
    for m in models.values():
        m.train()
    steps = {k: (lambda m=m: _train_step(m, x, keypoints, weight)) for k, m in models.items()}
    train_ms = time_interleaved(steps, device, warmup=1, rounds=args.repeat)
    print(f"device {device}, head {args.backbones}, input {input_hw}, batch {args.batch_size}, ResNet-"
          f"{args.depth} width {args.width}, torch threads {torch.get_num_threads()}")
    print(f"{'stem/stages':11s} {'features':>10s} {'channels':>8s} {'GFLOPs/img':>10s} {'infer ms':>9s} "
          f"{'x ref':>6s} {'train ms':>9s} {'x ref':>6s}")
    ref = next(iter(models))
    for key, model in models.items():
        flops = count_flops(model.eval().cpu(), x[:1].cpu()) / 1e9
        model.to(device)
        fh, fw = model.feature_hw
        print(f"{key[0]} / {key[1]:<7d} {f'{fh}x{fw}':>10s} {model.backbone.out_channels:8d} {flops:10.3f} "
              f"{infer_ms[key]:9.2f} {infer_ms[key] / infer_ms[ref]:6.2f} {train_ms[key]:9.2f} "
              f"{train_ms[key] / train_ms[ref]:6.2f}")
    for s in skipped:
        print(f"{s}: not built (heatmap size {heatmap_hw} out of its reach)")


if __name__ == "__main__":
    main()
