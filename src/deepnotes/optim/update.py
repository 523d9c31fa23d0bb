"""The Adam/AdamW update on lists of tensors, eager: one tensor at a time, or torch._foreach_* kernels.

``lists`` (built by ``Adam._gather``) maps ``params``, ``grads``, ``step``, ``exp_avg``, ``exp_avg_sq`` (and
``max_exp_avg_sq`` with amsgrad) to equally long lists of tensors, one entry per parameter with a gradient;
the functions update them in place. The compiled update in :mod:`deepnotes.optim.fused` shares
:func:`real_view` and falls back on :func:`loop_update`.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor


def real_view(t: Tensor) -> Tensor:
    """Complex tensors are updated as pairs of reals (so |g|^2 is per component, as in torch)."""
    return torch.view_as_real(t) if t.is_complex() else t


def loop_update(lists: dict[str, list[Tensor]], *, lr: float, beta1: float, beta2: float, eps: float,
                weight_decay: float, amsgrad: bool, maximize: bool, decoupled: bool) -> None:
    """The update, one parameter tensor at a time (updates ``lists`` in place)."""
    for i, (p, g) in enumerate(zip(lists["params"], lists["grads"], strict=True)):
        p, g = real_view(p), real_view(g)
        m, v = real_view(lists["exp_avg"][i]), real_view(lists["exp_avg_sq"][i])
        step = lists["step"][i]
        g = -g if maximize else g
        step += 1
        if weight_decay != 0:
            if decoupled:
                p.mul_(1 - lr * weight_decay)
            else:
                g = g.add(p, alpha=weight_decay)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        t = step.item()
        step_size = lr / (1 - beta1**t)
        bc2_sqrt = (1 - beta2**t) ** 0.5
        if amsgrad:
            v_max = real_view(lists["max_exp_avg_sq"][i])
            torch.maximum(v_max, v, out=v_max)
            v = v_max
        denom = (v.sqrt() / bc2_sqrt).add_(eps)
        p.addcdiv_(m, denom, value=-step_size)


def _by_device_dtype(lists: dict[str, list[Tensor]]) -> list[dict[str, list[Tensor]]]:
    """Split the lists so that each foreach call sees tensors of one device and dtype."""
    buckets: dict[tuple[torch.device, torch.dtype], dict[str, list[Tensor]]] = {}
    for i, p in enumerate(lists["params"]):
        bucket = buckets.setdefault((p.device, p.dtype), defaultdict(list))
        for key, values in lists.items():
            bucket[key].append(real_view(values[i]) if key != "step" else values[i])
    return list(buckets.values())


def foreach_update(lists: dict[str, list[Tensor]], *, lr: float, beta1: float, beta2: float, eps: float,
                   weight_decay: float, amsgrad: bool, maximize: bool, decoupled: bool) -> None:
    """The same update with torch._foreach_* ops: each line is one kernel over all tensors of a bucket."""
    for b in _by_device_dtype(lists):
        params, m, v, steps = b["params"], b["exp_avg"], b["exp_avg_sq"], b["step"]
        grads = torch._foreach_neg(b["grads"]) if maximize else b["grads"]
        torch._foreach_add_(steps, 1)
        if weight_decay != 0:
            if decoupled:
                torch._foreach_mul_(params, 1 - lr * weight_decay)
            elif maximize:  # grads is already our own copy
                torch._foreach_add_(grads, params, alpha=weight_decay)
            else:
                grads = torch._foreach_add(grads, params, alpha=weight_decay)
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        del grads
        ts = [s.item() for s in steps]
        neg_step_size = [-lr / (1 - beta1**t) for t in ts]
        bc2_sqrt = [(1 - beta2**t) ** 0.5 for t in ts]
        if amsgrad:
            torch._foreach_maximum_(b["max_exp_avg_sq"], v)
            v = b["max_exp_avg_sq"]
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, m, denom, neg_step_size)
