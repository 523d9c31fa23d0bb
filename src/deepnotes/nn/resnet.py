"""A 2D ResNet backbone with configurable depth and width, shared by the video and pose topics.

Temporal modules (TSM, TEA, ...) plug into its residual blocks: every block exposes ``conv1`` (the first
conv of the residual branch, where TSM-style shifts go) and the backbone lists its blocks in
``blocks()``, so a video model can wrap or replace them without copying the network.

Parameter names are our own (``stem.0`` conv, ``stem.1`` BN, ``stages.<i>.<j>.conv<k>.0`` / ``.1``,
``stages.<i>.<j>.downsample.0`` / ``.1``); :mod:`deepnotes.nn.pretrained` maps torchvision's, timm's,
Hugging Face transformers' and mmcv's names onto them. Each conv + BN pair is a :class:`ConvBN`, so
:func:`core_layers` finds it again after a video model wrapped it (``conv1`` inside a temporal module) or
inflated it to 3D: the weights of any such model are named as in the plain 2D network.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

# depth -> (block type, blocks per stage)
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    10: ("basic", (1, 1, 1, 1)),
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    26: ("bottleneck", (2, 2, 2, 2)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


class ConvBN(nn.Sequential):
    """A conv without bias then BatchNorm (``[0]`` conv, ``[1]`` BN): a plain ``Sequential`` whose type marks
    it as one of the backbone's own layers (see :func:`core_layers`)."""


def conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> ConvBN:
    return ConvBN(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convs. (N, cin, H, W) -> (N, planes, H/stride, W/stride)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn(cin, planes, 3, stride)
        self.conv2 = conv_bn(planes, planes, 3)
        self.relu = nn.ReLU(inplace=True)
        out = planes * self.expansion
        self.downsample = conv_bn(cin, out, 1, stride) if stride != 1 or cin != out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv1(x))
        y = self.conv2(y)
        return self.relu(y + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4). (N, cin, H, W) -> (N, 4*planes, H/stride, W/stride)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn(cin, planes, 1)
        self.conv2 = conv_bn(planes, planes, 3, stride)
        self.conv3 = conv_bn(planes, planes * self.expansion, 1)
        self.relu = nn.ReLU(inplace=True)
        out = planes * self.expansion
        self.downsample = conv_bn(cin, out, 1, stride) if stride != 1 or cin != out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv1(x))
        y = self.relu(self.conv2(y))
        y = self.conv3(y)
        return self.relu(y + self.downsample(x))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """ResNet feature extractor.

    Args:
        depth: one of ``DEPTHS`` (10, 18, 34 basic; 26, 50, 101 bottleneck).
        width: channels of the first stage (64 in the paper; 16-32 trains in minutes on CPU).
        in_channels: 3 for RGB, 2L for stacked optical flow.
        stem_stride: total downsampling of the stem (4 = conv stride 2 + max-pool, as in the paper;
            2 or 1 keep resolution for small inputs).
        num_stages: use only the first stages (pose heads often want stride 16 or 8 features).

    Input (N, in_channels, H, W); output (N, out_channels, H / (stem_stride * 2**(num_stages-1)), ...).
    """

    def __init__(self, depth: int = 18, width: int = 64, in_channels: int = 3, stem_stride: int = 4,
                 num_stages: int = 4) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"unknown ResNet depth {depth}; valid: {sorted(DEPTHS)}")
        if stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4, got {stem_stride}")
        if not 1 <= num_stages <= 4:
            raise ValueError(f"num_stages must be 1..4, got {num_stages}")
        kind, layers = DEPTHS[depth]
        block = BLOCKS[kind]
        self.depth, self.width, self.in_channels = depth, width, in_channels
        stem = [nn.Conv2d(in_channels, width, 7 if stem_stride > 1 else 3, 2 if stem_stride > 1 else 1,
                          3 if stem_stride > 1 else 1, bias=False),
                nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        if stem_stride == 4:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        stages, cin = [], width
        for i, n in enumerate(layers[:num_stages]):
            planes = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, planes, stride=2 if (i > 0 and j == 0) else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.out_channels = cin
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # zero-init the last BN of each residual branch: every block starts as identity, which trains
        # small networks faster and more stably (Goyal et al., 2017)
        for b in self.blocks():
            last = b.conv3 if isinstance(b, Bottleneck) else b.conv2
            nn.init.zeros_(last[1].weight)

    def blocks(self) -> Iterator[nn.Module]:
        """Every residual block, in order (where temporal modules are inserted)."""
        for stage in self.stages:
            yield from stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x


def _conv_bn_in(module: nn.Module | None) -> ConvBN | None:
    """``module`` itself when it is a :class:`ConvBN`, else the first one inside it (a temporal module's
    wrapper holds the block's own conv + BN); None for an identity shortcut."""
    if module is None:
        return None
    return next((m for m in module.modules() if isinstance(m, ConvBN)), None)


def core_layers(net: nn.Module) -> dict[str, nn.Module]:
    """The ResNet's own layers by their plain 2D names (``stem.0``, ``stem.1``, ``stages.0.0.conv1.0``,
    ``stages.0.0.conv1.1``, ..., ``stages.<i>.<j>.downsample.0``), whatever wraps or replaces them since.

    ``net`` is a :class:`ResNet` or anything with its ``stem`` and ``stages`` (a video model's backbone
    with temporal modules around each ``conv1``, an inflated 3D body whose convs are now Conv3d or (2+1)D
    pairs). Loading and inflating pretrained weights walk this mapping.
    """
    layers = {"stem.0": net.stem[0], "stem.1": net.stem[1]}
    for i, stage in enumerate(net.stages):
        for j, block in enumerate(stage):
            for name in ("conv1", "conv2", "conv3", "downsample"):
                unit = _conv_bn_in(getattr(block, name, None))
                if unit is not None:
                    layers[f"stages.{i}.{j}.{name}.0"], layers[f"stages.{i}.{j}.{name}.1"] = unit[0], unit[1]
    return layers
