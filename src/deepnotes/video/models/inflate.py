"""Turn the shared 2D ResNet into a 3D network by replacing its layers, not by copying its code.

Every ``Conv2d`` becomes whatever ``make_conv(name, conv2d)`` returns (a Conv3d for I3D, a (2+1)D pair
for R(2+1)D), ``BatchNorm2d`` becomes ``BatchNorm3d`` (same affine init, so the zero-init of each
residual branch's last BN survives) and the stem's ``MaxPool2d`` pools only spatially. The blocks'
``forward`` code is shape-agnostic, so it runs unchanged on (N, C, T, H, W).

:func:`load_2d` fills such a network from a 2D ResNet's weights (ImageNet, ``video train --pretrained``):
a Conv3d gets the 2D kernel repeated over time and divided by its length (I3D's rule), a (2+1)D pair the
rule of :func:`inflate_factorised_`, a BatchNorm3d the 2D BN's parameters and running statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deepnotes.nn.resnet import core_layers


def inflate_weight(weight: torch.Tensor, kt: int) -> torch.Tensor:
    """(out, in, k, k) 2D kernel -> (out, in, kt, k, k): repeated over time and divided by ``kt``, so a clip
    of identical frames gives the 2D response at every frame the kernel does not reach past the clip."""
    return weight.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt


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
        out.weight.data.copy_(inflate_weight(conv.weight.data, kt))
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


@torch.no_grad()
def inflate_factorised_(pair: nn.Sequential, weight: torch.Tensor, after: nn.Module) -> None:
    """Fill a (2+1)D pair (``[0]`` spatial 1 x k x k conv to M channels, ``[1]`` BN, ``[2]`` ReLU, ``[3]``
    temporal t x 1 x 1 conv to C_out) from a 2D kernel (C_out, C_in, k, k); ``after`` is the BN that
    follows the pair, already holding the 2D BN's statistics (mean m_o, std s_o of the conv's output a_o).

    The ReLU between the two convs is what a copy cannot pass, so each output channel is carried by
    middle channels whose BN keeps them on the ReLU's linear side:

    * pairs, ``relu(a) - relu(-a) = a``: output channel o gets the 2D kernel and its negation, the middle BN
      maps each to itself (running mean +-m_o, variance s_o^2, gamma s_o, beta +-m_o), and the temporal
      conv adds them with +1/t and -1/t at each tap: exact;
    * single channels, where M is too narrow for pairs: the 2D kernel with beta shifted by
      ``d_o = 4 s_o - m_o``, so ``relu(a + d_o) = a + d_o`` unless a falls 4 std below its mean; the
      temporal conv adds it with +1/t and ``after``'s running mean moves by d_o to take the shift back.

    On a clip of identical frames, away from the zero-padded ends, the pair then computes the 2D conv in
    eval mode; in training the middle BN gives a per-channel affine map of a that ``after`` removes. M
    (R(2+1)D's parameter-matching width) holds ``P = min(C_out, M - C_out)`` pairs: every 3x3 conv with
    C_in = C_out has M >= 2 C_out; the stem and a basic block's stage-widening first conv use single
    channels for the rest. Middle channels left over get temporal weight 0.
    """
    spatial, bn, temporal = pair[0], pair[1], pair[3]
    cout, m, kt = weight.shape[0], spatial.out_channels, temporal.kernel_size[0]
    p = min(cout, m - cout)
    mean, std = after.running_mean.clone(), (after.running_var + after.eps).sqrt()
    chan = torch.cat([torch.arange(p), torch.arange(p), torch.arange(p, cout)])  # middle -> output channel
    sign = torch.cat([torch.ones(p), -torch.ones(p), torch.ones(cout - p)])
    shift = torch.cat([torch.zeros(2 * p), 4 * std[p:] - mean[p:]])
    used = len(chan)  # p + C_out middle channels carry the 2D conv
    spatial.weight[:used] = sign.view(-1, 1, 1, 1, 1) * weight[chan].unsqueeze(2)
    bn.reset_parameters()
    bn.running_mean[:used] = sign * mean[chan]
    bn.running_var[:used] = std[chan] ** 2 - bn.eps  # eval: s (x - mean) / s + beta = x - mean + beta
    bn.weight[:used] = std[chan]
    bn.bias[:used] = sign * mean[chan] + shift
    temporal.weight.zero_()
    temporal.weight[chan, torch.arange(used)] = (sign / kt).view(-1, 1, 1, 1).expand(-1, kt, 1, 1)
    after.running_mean[p:] += shift[2 * p:]


@torch.no_grad()
def load_2d(body: nn.Module, resnet2d: nn.Module) -> list[str]:
    """Copy a 2D ResNet's weights into ``body`` (the same ResNet, 2D with temporal modules around its convs,
    or converted by :func:`to_3d`), layer by layer through their plain names (:func:`core_layers`); returns
    the names of the layers that were inflated. BNs first: a (2+1)D pair reads the statistics of its BN."""
    inflated = []
    target, source = core_layers(body), core_layers(resnet2d)
    for name, src in source.items():
        if isinstance(src, nn.BatchNorm2d):
            target[name].load_state_dict(src.state_dict())  # BatchNorm3d has the same parameters and buffers
    for name, src in source.items():
        dst = target[name]
        if isinstance(src, nn.BatchNorm2d):
            continue
        if isinstance(dst, nn.Conv3d):
            dst.weight.copy_(inflate_weight(src.weight, dst.kernel_size[0]))
            inflated += [name] if dst.kernel_size[0] > 1 else []
        elif isinstance(dst, nn.Conv2d):
            dst.weight.copy_(src.weight)
        else:
            inflate_factorised_(dst, src.weight, target[name[:-1] + "1"])  # conv "...0" -> its BN "...1"
            inflated.append(name)
    return inflated
