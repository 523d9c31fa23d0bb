"""How much weight decay actually reaches a weight under Adam+L2 and under AdamW.

Weights receive pure-noise gradients of standard deviation sigma (one sigma per group) and start at
w = 1. The same weights are run twice on identical noise: once with weight decay lambda, once without.
The difference of the two final weights is what the decay did, with the noise cancelled. Normalised by
what plain decay would do (lr * lambda * T * w), it is the *effective decay coefficient* kappa:

- AdamW shrinks w by (1 - lr lambda) each step, whatever the gradient: kappa ~ 1 for every sigma.
- Adam adds lambda w to the gradient, and the update divides that by sqrt(v_hat) ~ sigma: kappa ~ 1/sigma.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepnotes.optim.adam import Adam, AdamW


@dataclass
class DecayResult:
    sigmas: np.ndarray  # (G,) gradient noise std of each group
    kappa: dict[str, np.ndarray]  # optimizer name -> (G,) effective decay coefficient
    rms_v: dict[str, np.ndarray]  # optimizer name -> (G,) mean sqrt(v_hat) at the end


def _run(cls: type[Adam], noise: torch.Tensor, lr: float,
         weight_decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Final weights (G, R) and sqrt of bias-corrected v for ``noise`` of shape (T, G, R)."""
    w = torch.nn.Parameter(torch.ones(noise.shape[1:], dtype=noise.dtype))
    opt = cls([w], lr=lr, weight_decay=weight_decay)
    for g in noise:
        w.grad = g
        opt.step()
    state = opt.state[w]
    t = state["step"].item()
    v_hat = state["exp_avg_sq"] / (1 - opt.param_groups[0]["betas"][1] ** t)
    return w.detach(), v_hat.sqrt()


def effective_decay(sigmas: np.ndarray, steps: int, replicates: int, lr: float = 1e-2,
                    weight_decay: float = 0.05, seed: int = 0) -> DecayResult:
    """kappa for Adam and AdamW at each sigma (float64, ``replicates`` weights per sigma)."""
    gen = torch.Generator().manual_seed(seed)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).view(1, -1, 1)
    noise = torch.randn(steps, len(sigmas), replicates, generator=gen, dtype=torch.float64) * sig
    kappa, rms_v = {}, {}
    for name, cls in (("Adam", Adam), ("AdamW", AdamW)):
        with_decay, root_v = _run(cls, noise, lr, weight_decay)
        without, _ = _run(cls, noise, lr, 0.0)
        moved = (without - with_decay).mean(dim=1)  # (G,) what the decay did, noise cancelled
        mean_w = 0.5 * (1 + with_decay.mean(dim=1))  # average weight over the run (starts at 1)
        kappa[name] = (moved / (lr * weight_decay * steps * mean_w)).numpy()
        rms_v[name] = root_v.mean(dim=1).numpy()
    return DecayResult(np.asarray(sigmas, dtype=np.float64), kappa, rms_v)


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log x (y must be positive)."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
