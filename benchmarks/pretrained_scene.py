"""TSM on the synthetic ``scene`` set from scratch and from a pretrained ResNet-18: both validation curves.

    .venv/bin/python benchmarks/pretrained_scene.py [--epochs 8 --pretrain-epochs 3 --size 32 --segments 4]
        [--val-per-class 32 --seed 0]

1. Pretraining, as ImageNet would be for a real set: a ResNet-18 (width 64) classifies single frames of a
   second ``scene`` set (same 8 classes, other videos: seed 1), a few epochs, and is saved in torchvision's
   layout (``conv1.weight``, ``layer1.0.bn1.*``, ``fc.*``) with ``save_torchvision``.
2. ``video train --model tsm`` on the ``scene`` set of seed 0 twice, with the same config and seed: from
   scratch, and with ``pretrained`` = that file. Validation top-1 after every epoch.

Goal (issue 23): the pretrained run reaches the from-scratch run's final top-1 in at most half the epochs.
Everything runs on the CPU; the sizes are small so the two curves take minutes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.nn.pretrained import IMAGENET_MEAN, IMAGENET_STD, save_torchvision
from deepnotes.nn.resnet import ResNet
from deepnotes.video import TrainConfig, train
from deepnotes.video.data import read_video
from deepnotes.video.data.lists import read_list
from deepnotes.video.data.synth import synth_dataset


def frames_of(list_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Every frame of every video of a list, normalised: (N, 3, S, S) and labels (N,)."""
    images, labels = [], []
    for rec in read_list(list_path):
        video = read_video(rec.path)  # (T, H, W, 3) uint8 RGB
        images.append(torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).float() / 255)
        labels += [rec.label] * len(video)
    x = torch.cat(images)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std, torch.tensor(labels)


def pretrain(list_path: Path, out: Path, epochs: int, stem_stride: int, seed: int = 0) -> tuple[Path, list]:
    """A ResNet-18 + linear classifier on single frames (AdamW, flips); saved in torchvision's layout."""
    torch.manual_seed(seed)
    x, y = frames_of(list_path)
    net, fc = ResNet(18, 64, stem_stride=stem_stride), nn.Linear(512, int(y.max()) + 1)
    params = [*net.parameters(), *fc.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    g, curve = torch.Generator().manual_seed(seed), []
    for epoch in range(epochs):
        net.train()
        order, correct = torch.randperm(len(x), generator=g), 0
        for i in range(0, len(x) - 31, 32):
            idx = order[i:i + 32]
            xb = torch.where(torch.rand(len(idx), 1, 1, 1, generator=g) < 0.5, x[idx].flip(-1), x[idx])
            logits = fc(net(xb).mean((2, 3)))
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += int((logits.argmax(1) == y[idx]).sum())
        curve.append(correct / (len(x) // 32 * 32))
        print(f"pretrain epoch {epoch + 1}: train frame accuracy {curve[-1]:.3f}", flush=True)
    return save_torchvision(net.eval(), out, fc), curve


def tsm_curve(data: dict, out: Path, args, pretrained: Path | None) -> list[float]:
    cfg = TrainConfig(model="tsm", train=str(data["train"]), val=str(data["val"]), out=str(out),
                      epochs=args.epochs, segments=args.segments, input_size=args.size, depth=18, width=64,
                      stem_stride=args.stem_stride, batch_size=8, workers=0, cache=True, device=args.device,
                      seed=args.seed, pretrained=str(pretrained) if pretrained else None,
                      crop_scales=tuple(float(v) for v in args.crop_scales.split(",")))
    records = train(cfg, log_fn=lambda line: print(line, flush=True))
    return [r["top1"] for r in records]


def report(scratch: list[float], pre: list[float]) -> None:
    print("\nepoch  scratch top1  pretrained top1")
    for i, (a, b) in enumerate(zip(scratch, pre, strict=True)):
        print(f"{i + 1:5d}  {a:12.3f}  {b:15.3f}")
    target = scratch[-1]
    reached = next((i + 1 for i, v in enumerate(pre) if v >= target), None)
    print(f"\nfrom scratch: top-1 {target:.3f} after {len(scratch)} epochs; pretrained reaches it after "
          f"{reached} epoch(s) (ratio {reached / len(scratch):.2f}; goal <= 0.5)" if reached else
          f"\npretrained never reaches the from-scratch top-1 {target:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--pretrain-epochs", type=int, default=3)
    p.add_argument("--n-per-class", type=int, default=16)
    p.add_argument("--val-per-class", type=int, default=None,
                   help="validation videos per class (default: half of --n-per-class)")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--stem-stride", type=int, default=2, help="2: the 7x7 stride-2 conv, no max-pool")
    p.add_argument("--seed", type=int, default=0, help="the TSM runs' seed (data, pretraining fixed)")
    p.add_argument("--crop-scales", default=",".join(map(str, TrainConfig.crop_scales)),
                   help="the training crop's scales (default: video train's; 1,0.875,0.75,0.66: TSN's RGB)")
    p.add_argument("--work", default=None, help="folder for the data and runs (default: a temporary one)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda (the TSM trainings; pretraining: CPU)")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="pretrained_scene_"))
    t0 = time.time()
    val_per_class = args.val_per_class or args.n_per_class // 2
    data = synth_dataset("scene", work / "scene", args.n_per_class, val_per_class, frames=8,
                         size=args.size, seed=0)
    other = synth_dataset("scene", work / "scene_pretrain", args.n_per_class, 1, frames=8, size=args.size,
                          seed=1)
    weights, _ = pretrain(other["train"], work / "resnet18_scene.pth", args.pretrain_epochs, args.stem_stride)
    scratch = tsm_curve(data, work / "scratch", args, None)
    pre = tsm_curve(data, work / "pretrained", args, weights)
    report(scratch, pre)
    print(f"({time.time() - t0:.0f} s on {torch.get_num_threads()} thread(s); work folder {work})")


if __name__ == "__main__":
    main()
