"""R(2+1)D (Tran et al., 2018): every t x k x k conv factorised into a 1 x k x k spatial conv, BN, ReLU and
a t x 1 x 1 temporal conv. The middle width ``M = t k^2 Cin Cout / (k^2 Cin + t Cout)`` keeps the
parameter count of the full 3D conv, so the extra non-linearity, not extra capacity, is what differs.
"""

from __future__ import annotations

from torch import nn

from deepnotes.video.models.base import ModelConfig, Recognizer3D, resnet
from deepnotes.video.models.inflate import ResNet3DBody, conv3d_like, to_3d
from deepnotes.video.models.registry import MODELS


def factorised(conv: nn.Conv2d, kt: int = 3) -> nn.Module:
    k, cin, cout = conv.kernel_size[0], conv.in_channels, conv.out_channels
    if k == 1:
        return conv3d_like(conv, 1)
    mid = max(1, (kt * k * k * cin * cout) // (k * k * cin + kt * cout))
    spatial = nn.Conv3d(cin, mid, (1, k, k), (1, *conv.stride), (0, *conv.padding), bias=False)
    temporal = nn.Conv3d(mid, cout, (kt, 1, 1), 1, (kt // 2, 0, 0), bias=False)
    for m in (spatial, temporal):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(spatial, nn.BatchNorm3d(mid), nn.ReLU(inplace=True), temporal)


@MODELS.register("r2plus1d", family="3d")
def build(cfg: ModelConfig) -> Recognizer3D:
    net = resnet(cfg)
    return Recognizer3D(ResNet3DBody(to_3d(net, lambda name, conv: factorised(conv))), net.out_channels, cfg)
