"""TAM / TANet (Liu et al., 2021): temporal adaptive module with a local and a global branch.

From the spatially pooled features (N, C, T): the local branch (temporal conv, k=3, then 1x1, sigmoid)
gives a per-frame importance map that rescales the features; the global branch (an MLP over the T
time steps of each channel, softmax) gives each clip and channel its own temporal kernel of size K,
which then convolves the rescaled features over time, channel by channel. The kernels adapt to the
clip, unlike a 3D conv's fixed weights; the last ones are kept in ``last_kernel`` for inspection.

The module reads each block's first conv after its BN and ReLU, as TANet's released code has it (the
authors' ``ops/temporal_module.py`` calls the block's ReLU, then ``self.tam``; mmaction2's ``tanet.py``
calls ``conv1``, a ConvModule that ends in its activation, then ``self.tam``): it pools and reweights
non-negative activations, and its output stays non-negative. TAM runs saved before 2026-12-08 read the
conv's BN output before the ReLU (``AfterReluConfig.after_relu=False``; they rebuild as they were).

On a pretrained backbone (``video train --pretrained``) the module starts as mmaction2's TAM once did
(its ``init_weights`` of 2021; the authors' code and today's mmaction2 keep PyTorch's defaults, as our
from-scratch models do): Conv1d Kaiming-normal (fan-out), BatchNorm1d gamma 1 and beta 0, Linear normal
with std 0.001 (so the global branch's kernels start near the uniform 1/K average of the K neighbours).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.video.models.base import AfterReluConfig, Recognizer2D, insert_after_conv1, resnet
from deepnotes.video.models.ops import reduced, temporal_taps
from deepnotes.video.models.registry import MODELS


class TAM(nn.Module):
    def __init__(self, channels: int, t: int, kernel: int = 3, ratio: int = 4, alpha: int = 2) -> None:
        super().__init__()
        r = reduced(channels, ratio)
        self.t, self.k = t, kernel
        self.local = nn.Sequential(nn.Conv1d(channels, r, 3, padding=1, bias=False), nn.BatchNorm1d(r),
                                   nn.ReLU(inplace=True), nn.Conv1d(r, channels, 1, bias=False), nn.Sigmoid())
        self.glob = nn.Sequential(nn.Linear(t, alpha * t, bias=False), nn.BatchNorm1d(alpha * t),
                                  nn.ReLU(inplace=True), nn.Linear(alpha * t, kernel, bias=False),
                                  nn.Softmax(-1))
        self.last_kernel: torch.Tensor | None = None

    @torch.no_grad()
    def init_pretrained(self, backbone: nn.Module) -> None:
        """mmaction2's ``TAM.init_weights``: Conv1d Kaiming-normal, BN 1/0, Linear N(0, 0.001)."""
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)

    def extra_flops(self, args: tuple, output: torch.Tensor) -> int:
        """The adaptive temporal convolution (k multiply-adds per output value); the branches are counted."""
        return 2 * self.k * output.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        t = self.t
        v = x.view(nt // t, t, c, h, w)  # (N, T, C, H, W): a view, no transpose copies
        n = v.shape[0]
        pooled = v.mean((3, 4)).transpose(1, 2)  # (N, C, T)
        kernel = self.glob(pooled.reshape(n * c, t)).view(n, c, self.k)
        self.last_kernel = kernel.detach()
        importance = self.local(pooled).transpose(1, 2)  # (N, T, C)
        # the per-frame importance rescales the input frame a tap reads; folded into the (small) tap
        # weights, so the full-size features are touched only by the convolution's own passes
        p = self.k // 2
        padded = F.pad(importance, (0, 0, p, p))  # (N, T + 2p, C)
        taps = [(kernel[:, None, :, j] * padded[:, j:j + t])[..., None, None] for j in range(self.k)]
        return temporal_taps(v, taps).view(nt, c, h, w)


@MODELS.register("tam", family="2d", config=AfterReluConfig)
def build(cfg: AfterReluConfig) -> Recognizer2D:
    backbone = resnet(cfg)
    insert_after_conv1(backbone, lambda c: TAM(c, cfg.num_segments), after_relu=cfg.after_relu)
    return Recognizer2D(backbone, cfg)
