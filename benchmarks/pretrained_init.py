"""How far each video model, started from 2D weights (``video train --pretrained``), lands from the 2D network
on a clip of identical frames, at initialisation.

    .venv/bin/python benchmarks/pretrained_init.py [--weights R18.pth] [--frames 8 --size 112 --depth 18]

Without ``--weights`` the 2D network is a seeded random ResNet whose BatchNorms carry random statistics. For
each model: the 2D network's per-frame features f (global average pool) and logits z = fc(f) with the
model's own classifier; the model's per-frame features on the clip (2D models: ``features``; 3D: the body's
output pooled over space) and its logits. Printed: the largest relative gap of the features at the clip's
two end frames and at the frames between, and of the logits (``max |a - b| / max |b|``, eval mode); then
the features of the centre frame of a ``--long`` clip, beyond the reach of the zero padding at its ends
(a temporal conv reaches one frame further per layer: I3D's 9, i3d_full's 19 frames with ResNet-18).
"""

from __future__ import annotations

import argparse

import torch

from deepnotes.nn.pretrained import load_resnet, state_dict_to_torchvision
from deepnotes.nn.resnet import ResNet
from deepnotes.video.models import MODELS, build_model, init_from_2d

# every model with a ResNet backbone (C3D has none: --pretrained refuses it)
RESNET_MODELS = [n for n in MODELS.names(family="2d") + MODELS.names(family="3d") if n != "c3d"]


def random_resnet(depth: int, width: int, seed: int = 0) -> ResNet:
    """A seeded ResNet whose BNs have random affine parameters and running statistics (like a trained one,
    every residual branch is live)."""
    torch.manual_seed(seed)
    net = ResNet(depth, width)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.0)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def gaps(name: str, state: dict, plain: ResNet, frames: int, size: int, seed: int = 0) -> dict[str, float]:
    """Relative gaps between ``name`` started from ``state`` and ``plain`` on a clip of one repeated frame."""
    torch.manual_seed(seed)
    model = build_model(name, 10, num_segments=frames, depth=plain.depth, width=plain.width, stem_stride=4,
                        input_size=size)
    init_from_2d(model, "weights", state)
    model.eval()
    frame = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    clip = frame.unsqueeze(2).expand(1, 3, frames, size, size).contiguous()
    with torch.no_grad():
        ref = plain(frame).mean((2, 3))  # (1, D)
        ref_logits = model.fc(ref)
        feats = per_frame_features(model, clip)  # (T, D)
        logits = model(clip)

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max() / b.abs().max())

    ends = torch.tensor([0, frames - 1])
    middle = torch.arange(1, frames - 1)
    return {"centre": rel(feats[frames // 2], ref[0]), "ends": rel(feats[ends], ref.expand(2, -1)),
            "middle": rel(feats[middle], ref.expand(len(middle), -1)) if len(middle) else float("nan"),
            "logits": rel(logits, ref_logits)}


def per_frame_features(model: torch.nn.Module, clip: torch.Tensor) -> torch.Tensor:
    if hasattr(model, "features"):
        return model.features(clip)[0]
    return model.backbone(clip).mean((3, 4))[0].t()  # (D, T) -> (T, D)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="a ResNet .pth/.safetensors (default: random, seeded)")
    p.add_argument("--depth", type=int, default=18)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--long", type=int, default=48, help="frames of the long clip (its centre frame)")
    p.add_argument("--device", default="cpu", help="accepted for the benchmark runner; the gaps are exact "
                   "arithmetic, computed on the CPU in float64 or float32 as the models are built")
    args = p.parse_args()
    plain = random_resnet(args.depth, args.width)
    if args.weights:
        load_resnet(plain, args.weights)
        plain.eval()
    state = state_dict_to_torchvision(plain)
    print(f"clip of {args.frames} identical {args.size}x{args.size} frames, ResNet-{args.depth} width "
          f"{args.width}; relative gap to the 2D network (max |model - 2D| / max |2D|)")
    print(f"{'model':10s} {'features, end frames':>21s} {'features, others':>17s} {'logits':>10s} "
          f"{f'centre of {args.long}':>13s}")
    for name in RESNET_MODELS:
        g = gaps(name, state, plain, args.frames, args.size)
        centre = gaps(name, state, plain, args.long, args.size)["centre"]
        print(f"{name:10s} {g['ends']:21.2e} {g['middle']:17.2e} {g['logits']:10.2e} {centre:13.2e}")


if __name__ == "__main__":
    main()
