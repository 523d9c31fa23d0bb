"""I3D (Carreira & Zisserman, 2017): a 2D ResNet inflated to 3D, in two inflation patterns.

``i3d`` (ResNet3d's pattern, as in the non-local networks and mmaction2's I3D-ResNet): the stem conv and
the first conv of every residual block get a temporal kernel of 3; the other convs stay 1 frame wide.

``i3d_full`` (the paper's rule applied to every layer): each square N x N kernel becomes a cube
N x N x N, so the stem's 7x7 becomes 7x7x7 and every 3x3 a 3x3x3; 1x1 convs stay 1x1x1. It costs about
3x the 2D network's FLOPs against ``i3d``'s 2x.

Time is never downsampled, so the clip's T frames are kept to the end. Temporal kernels of 3D convs are
what claim 3 inspects.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from deepnotes.video.models.base import ModelConfig, Recognizer3D, resnet
from deepnotes.video.models.inflate import ResNet3DBody, conv3d_like, to_3d
from deepnotes.video.models.registry import MODELS


def _inflated(cfg: ModelConfig, temporal_kernel: Callable[[str, nn.Conv2d], int],
              weight_from_2d: bool) -> Recognizer3D:
    """The config's ResNet with each conv ``name`` given the temporal kernel
    ``temporal_kernel(name, conv)``."""
    net = resnet(cfg)
    body = to_3d(net, lambda name, conv: conv3d_like(conv, temporal_kernel(name, conv), weight_from_2d))
    return Recognizer3D(ResNet3DBody(body), net.out_channels, cfg)


@MODELS.register("i3d", family="3d")
def build(cfg: ModelConfig, weight_from_2d: bool = False) -> Recognizer3D:
    """ResNet3d inflation: stem and each block's first conv temporal (kernel 3)."""
    return _inflated(cfg, lambda name, conv: 3 if name == "stem.0" or name.endswith("conv1.0") else 1,
                     weight_from_2d)


# built and costed next to ``i3d``, not trained by the claims (to keep `--quick` short)
@MODELS.register("i3d_full", family="3d", variant=True)
def build_full(cfg: ModelConfig, weight_from_2d: bool = False) -> Recognizer3D:
    """Every N x N conv inflated to N x N x N (the I3D paper's rule)."""
    return _inflated(cfg, lambda name, conv: conv.kernel_size[0], weight_from_2d)
