"""Our Adam/AdamW update compiled by torch.compile into a single pass over memory per tensor.

The eager paths run the update as ~8 separate elementwise kernels, each reading and writing whole tensors.
Here the same arithmetic is written once, element-wise, and inductor fuses it into one loop (C++/OpenMP on
CPU, Triton on CUDA) that reads p, g, m, v and writes p, m, v: 7 x 4 bytes per float32 parameter, the
memory-traffic floor of the algorithm. The kernel is generated from our function; no torch optimizer
kernel is involved.

Tensors are flattened to 1-D and compiled with a dynamic size, so one kernel serves every parameter shape;
the scalars (lr, bias corrections) are passed as Python floats, which dynamo treats as inputs rather than
constants, so a learning-rate schedule does not trigger recompilation.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from deepnotes.optim.adam import _real, loop_update


def _moments(p: Tensor, g: Tensor, m: Tensor, v: Tensor, sign: float, l2: float, shrink: float,
             beta1: float, beta2: float) -> tuple[Tensor, Tensor, Tensor]:
    """Decayed weight and new moments, as expressions (nothing written yet)."""
    g = sign * g + l2 * p  # sign = -1 maximizes; l2 = lambda for Adam, 0 for AdamW
    return p * shrink, m + (g - m) * (1 - beta1), v * beta2 + g * g * (1 - beta2)


def _adam_math(p: Tensor, g: Tensor, m: Tensor, v: Tensor, sign: float, l2: float, shrink: float,
               neg_step_size: float, inv_bc2_sqrt: float, beta1: float, beta2: float, eps: float) -> None:
    """Element-wise update of 1-D tensors of equal length N, in place.

    Flags are folded into floats (``sign``, ``l2``, ``shrink`` = 1 - lr lambda for AdamW, else 1) so that
    one compiled kernel serves Adam, AdamW and maximize without recompiling.
    """
    p_new, m_new, v_new = _moments(p, g, m, v, sign, l2, shrink, beta1, beta2)
    p.copy_(p_new + neg_step_size * m_new / (v_new.sqrt() * inv_bc2_sqrt + eps))
    m.copy_(m_new)
    v.copy_(v_new)


def _amsgrad_math(p: Tensor, g: Tensor, m: Tensor, v: Tensor, v_max: Tensor, sign: float, l2: float,
                  shrink: float, neg_step_size: float, inv_bc2_sqrt: float, beta1: float, beta2: float,
                  eps: float) -> None:
    """As :func:`_adam_math`, normalising by the running maximum ``v_max`` of v (shape (N,))."""
    p_new, m_new, v_new = _moments(p, g, m, v, sign, l2, shrink, beta1, beta2)
    v_hat = torch.maximum(v_max, v_new)
    p.copy_(p_new + neg_step_size * m_new / (v_hat.sqrt() * inv_bc2_sqrt + eps))
    m.copy_(m_new)
    v.copy_(v_new)
    v_max.copy_(v_hat)


@functools.cache
def _compiled(amsgrad: bool):
    return torch.compile(_amsgrad_math if amsgrad else _adam_math, dynamic=True, fullgraph=True)


def fused_update(lists: dict[str, list[Tensor]], *, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, amsgrad: bool, maximize: bool, decoupled: bool) -> None:
    """Same contract as :func:`deepnotes.optim.adam.loop_update`; non-contiguous tensors take the loop path."""
    hyper = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                 maximize=maximize, decoupled=decoupled)
    leftovers: dict[str, list[Tensor]] = {key: [] for key in lists}
    fn = _compiled(amsgrad)
    sign, l2 = (-1.0 if maximize else 1.0), (0.0 if decoupled else weight_decay)
    shrink = 1 - lr * weight_decay if decoupled else 1.0
    for i in range(len(lists["params"])):
        tensors = [lists[key][i] for key in ("params", "grads", "exp_avg", "exp_avg_sq")]
        if amsgrad:
            tensors.append(lists["max_exp_avg_sq"][i])
        if not all(t.is_contiguous() for t in tensors):
            for key in lists:
                leftovers[key].append(lists[key][i])
            continue
        flat = [_real(t).view(-1) for t in tensors]
        step = lists["step"][i]
        step += 1
        t = step.item()
        fn(*flat, sign, l2, shrink, -lr / (1 - beta1**t), (1 - beta2**t) ** -0.5, beta1, beta2, eps)
    if leftovers["params"]:
        loop_update(leftovers, **hyper)
