"""Turn the shared 2D ResNet into a 3D network by replacing its layers, not by copying its code.

Every ``Conv2d`` becomes whatever ``make_conv(name, conv2d)`` returns (a Conv3d for I3D, a (2+1)D pair
for R(2+1)D), ``BatchNorm2d`` becomes ``BatchNorm3d`` (same affine init, so the zero-init of each
residual branch's last BN survives) and the stem's ``MaxPool2d`` pools only spatially. The blocks'
``forward`` code is shape-agnostic, so it runs unchanged on (N, C, T, H, W).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def conv3d_like(conv: nn.Conv2d, kt: int, weight_from_2d: bool = False) -> nn.Conv3d:
    """A Conv3d with ``conv``'s spatial shape and a temporal kernel ``kt`` (temporal stride 1).

    ``weight_from_2d``: I3D's inflation, the 2D kernel repeated over time divided by ``kt`` (a video of
    identical frames then gives the 2D network's output at every frame the kernel does not reach past the
    clip's ends: the temporal padding is zeros, as in I3D); otherwise a fresh Kaiming init.
    """
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    out = nn.Conv3d(conv.in_channels, conv.out_channels, (kt, *k), (1, *s), (kt // 2, *p),
                    groups=conv.groups, bias=conv.bias is not None)
    if weight_from_2d:
        out.weight.data.copy_(conv.weight.data.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt)
        if conv.bias is not None:
            out.bias.data.copy_(conv.bias.data)
    else:
        nn.init.kaiming_normal_(out.weight, mode="fan_out", nonlinearity="relu")
    return out


def to_3d(module: nn.Module, make_conv: Callable[[str, nn.Conv2d], nn.Module], prefix: str = "") -> nn.Module:
    """Replace, in place and recursively, the 2D layers of ``module``; returns it."""
    for name, child in module.named_children():
        full = f"{prefix}.{name}" if prefix else name
        if isinstance(child, nn.Conv2d):
            setattr(module, name, make_conv(full, child))
        elif isinstance(child, nn.BatchNorm2d):
            bn = nn.BatchNorm3d(child.num_features, child.eps, child.momentum, child.affine,
                                child.track_running_stats)
            # affine and running statistics: a trained 2D BN carries over
            bn.load_state_dict(child.state_dict())
            setattr(module, name, bn)
        elif isinstance(child, nn.MaxPool2d):
            k, s, p, d = (nn.modules.utils._pair(v) for v in (child.kernel_size, child.stride, child.padding,
                                                                  child.dilation))
            setattr(module, name, nn.MaxPool3d((1, *k), (1, *s), (0, *p), (1, *d), ceil_mode=child.ceil_mode))
        else:
            to_3d(child, make_conv, full)
    return module


class ResNet3DBody(nn.Module):
    """Stem and stages of a converted ResNet: (N, C, T, H, W) -> (N, D, T, h, w)."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.stem, self.stages = resnet.stem, resnet.stages

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x
