"""C3D (Tran et al., 2015): a plain stack of 3x3x3 convolutions and poolings.

Widths w, 2w, 4w, 4w, 8w, 8w, 8w, 8w (64..512 in the paper) with BatchNorm (trains from scratch), the
first pooling spatial only, the later ones also halving time; ``depth`` is ignored (8 convs).
"""

from __future__ import annotations

from torch import nn

from deepnotes.video.models.base import ModelConfig, Recognizer3D
from deepnotes.video.models.registry import MODELS


def _conv(cin: int, cout: int) -> list[nn.Module]:
    conv = nn.Conv3d(cin, cout, 3, padding=1, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return [conv, nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]


@MODELS.register("c3d", family="3d")
def build(cfg: ModelConfig) -> Recognizer3D:
    w = cfg.width
    plan = [(w,), "p1", (2 * w,), "p2", (4 * w, 4 * w), "p2", (8 * w, 8 * w), "p2", (8 * w, 8 * w)]
    layers, cin = [], cfg.in_channels
    for step in plan:
        if step == "p1":
            layers.append(nn.MaxPool3d((1, 2, 2), (1, 2, 2)))
        elif step == "p2":  # ceil_mode keeps a 1-frame or odd-sized input alive
            layers.append(nn.MaxPool3d(2, 2, ceil_mode=True))
        else:
            for cout in step:
                layers += _conv(cin, cout)
                cin = cout
    return Recognizer3D(nn.Sequential(*layers), cin, cfg)
