"""I3D (Carreira & Zisserman, 2017): a 2D ResNet inflated to 3D.

The stem conv and the first conv of every residual block get a temporal kernel of 3 (ResNet3d's
"3x1x1 in the first conv" inflation); other convs stay 1 frame wide. Time is never downsampled, so
the clip's T frames are kept to the end. Temporal kernels of 3D convs are what claim 3 inspects.
"""

from __future__ import annotations

from deepnotes.video.models.base import ModelConfig, Recognizer3D, resnet
from deepnotes.video.models.inflate import ResNet3DBody, conv3d_like, to_3d


def build(cfg: ModelConfig, weight_from_2d: bool = False) -> Recognizer3D:
    net = resnet(cfg)

    def make(name, conv):
        temporal = name == "stem.0" or name.endswith("conv1.0")
        return conv3d_like(conv, 3 if temporal else 1, weight_from_2d)

    return Recognizer3D(ResNet3DBody(to_3d(net, make)), net.out_channels, cfg)
