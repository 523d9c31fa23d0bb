"""RealNVP (Dinh et al., 2017) on 2D points: the learned residual density of RLE.

``f`` maps a data point x to a latent z through affine coupling layers; each layer keeps one coordinate
(``mask``) and scales/shifts the other by functions of the kept one, so the Jacobian is triangular and
``log|det df/dx|`` is minus the sum of the log-scales. The density is
``log p(x) = log N(f(x); 0, I) + log|det df/dx|``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _mlp(hidden: int, tanh: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(2, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden),
                               nn.LeakyReLU(), nn.Linear(hidden, 2)]
    if tanh:  # bounded log-scales keep early training stable
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class RealNVP(nn.Module):
    """``layers`` coupling layers alternating which coordinate is kept; ``hidden`` units per MLP.

    Starts close to the identity (tiny initial weights), i.e. close to a standard Gaussian density.
    """

    def __init__(self, layers: int = 6, hidden: int = 64) -> None:
        super().__init__()
        masks = torch.tensor([[0.0, 1.0], [1.0, 0.0]] * (layers // 2) + [[0.0, 1.0]] * (layers % 2))
        self.register_buffer("masks", masks)
        self.s = nn.ModuleList(_mlp(hidden, tanh=True) for _ in range(layers))
        self.t = nn.ModuleList(_mlp(hidden, tanh=False) for _ in range(layers))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 2) -> (z (B, 2), log|det dz/dx| (B,))."""
        log_det = x.new_zeros(x.shape[0])
        z = x
        for mask, s_net, t_net in zip(self.masks, self.s, self.t, strict=True):
            kept = z * mask
            s = s_net(kept) * (1 - mask)
            t = t_net(kept) * (1 - mask)
            z = kept + (1 - mask) * (z - t) * torch.exp(-s)
            log_det = log_det - s.sum(dim=1)
        return z, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, 2) -> data (B, 2): the layers undone in reverse order (for sampling and tests)."""
        x = z
        for mask, s_net, t_net in reversed(list(zip(self.masks, self.s, self.t, strict=True))):
            kept = x * mask
            s = s_net(kept) * (1 - mask)
            t = t_net(kept) * (1 - mask)
            x = kept + (1 - mask) * (x * torch.exp(s) + t)
        return x

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log density (B,) of points x (B, 2) under the flow with a standard normal latent."""
        z, log_det = self(x)
        return -0.5 * (z**2).sum(dim=1) - math.log(2 * math.pi) + log_det
