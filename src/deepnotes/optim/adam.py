"""Adam with L2 weight decay and AdamW with decoupled weight decay.

Both keep, per parameter tensor ``p`` of any shape, the state ``step`` (a float32 CPU scalar tensor, as
torch does, so state dicts are interchangeable with ``torch.optim.Adam``), ``exp_avg`` m and ``exp_avg_sq``
v (same shape as ``p``), and with ``amsgrad`` also ``max_exp_avg_sq``. One step with gradient g:

    g <- -g                              (maximize)
    g <- g + lambda p                    (Adam: L2 decay goes through the adaptive scaling)
    p <- p (1 - lr lambda)               (AdamW: decay applied to the weight directly)
    m <- beta1 m + (1 - beta1) g
    v <- beta2 v + (1 - beta2) g^2
    v_hat <- max(v_hat, v)               (amsgrad; v_hat = v otherwise)
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v_hat / (1 - beta2^t)) + eps)

The only difference between the two classes is where lambda enters: in Adam the decay term lambda p is
divided by sqrt(v_hat) like the rest of the gradient, so weights with large gradients are barely decayed.

Three interchangeable implementations of the same update: ``foreach=False`` (one tensor at a time),
``foreach=True`` (torch._foreach_* kernels over all tensors of a device/dtype at once, fewer launches),
both in :mod:`deepnotes.optim.update`, and ``fused=True`` (our update function compiled by torch.compile
into one pass over memory, see :mod:`deepnotes.optim.fused`). This module holds the optimizer classes,
which pick one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from deepnotes.optim.fused import fused_update
from deepnotes.optim.update import foreach_update, loop_update


class Adam(torch.optim.Optimizer):
    """Adam; ``weight_decay`` is an L2 penalty added to the gradient (coupled with the adaptive scaling).

    Same arguments as ``torch.optim.Adam``, except ``fused`` selects our torch.compile'd update and
    ``capturable``/``differentiable`` are not offered.
    """

    decoupled: bool = False

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        _check_hyper(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        if foreach and fused:
            raise ValueError("choose at most one of foreach=True and fused=True")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        foreach=foreach, maximize=maximize, fused=fused)
        super().__init__(params, defaults)
        # fused path: per param group, the flat layout of its small tensors' state, kept between steps;
        # not part of the optimizer's state (pickling and deepcopy drop it, the next step rebuilds it)
        self._fused_plans: dict[int, Any] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._fused_plans = {}
        for group in self.param_groups:  # pickled optimizers from older versions may lack these keys
            for key, value in (("amsgrad", False), ("maximize", False), ("foreach", None), ("fused", None)):
                group.setdefault(key, value)

    def _gather(self, group: dict[str, Any]) -> dict[str, list[Tensor]]:
        """Lists (one entry per parameter with a gradient) of params, grads and state tensors; inits state.

        Written as comprehensions over whole lists: on a GPU this host work, not the update, is a large part
        of a step with hundreds of tensors."""
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return {}
        grads = [p.grad for p in params]
        if any(g.is_sparse for g in grads):
            raise RuntimeError("deepnotes Adam/AdamW do not support sparse gradients; use "
                               "torch.optim.SparseAdam")
        states = [self.state[p] for p in params]
        keys = ["step", "exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])
        for p, state in zip(params, states, strict=True):
            if len(state) == 0:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                for key in keys[1:]:
                    state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
            elif "max_exp_avg_sq" in keys and "max_exp_avg_sq" not in state:  # amsgrad switched on late
                state["max_exp_avg_sq"] = state["exp_avg_sq"].clone()
        lists = {"params": params, "grads": grads}
        for key in keys:
            lists[key] = [state[key] for state in states]
        return lists

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            lists = self._gather(group)
            if not lists:
                continue
            _check_hyper(lr=group["lr"], betas=group["betas"], eps=group["eps"],
                         weight_decay=group["weight_decay"])
            beta1, beta2 = (float(b) for b in group["betas"])
            hyper = dict(lr=float(group["lr"]), beta1=beta1, beta2=beta2, eps=float(group["eps"]),
                         weight_decay=float(group["weight_decay"]), amsgrad=bool(group["amsgrad"]),
                         maximize=bool(group["maximize"]), decoupled=self.decoupled)
            if group["fused"]:
                fused_update(lists, self.state, self._fused_plans, index, **hyper)
            elif _use_foreach(group["foreach"], lists["params"]):
                foreach_update(lists, **hyper)
            else:
                loop_update(lists, **hyper)
        return loss


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter): the weight decay multiplies the weight by ``1 - lr * weight_decay``
    directly instead of entering the gradient, so every weight decays at the same rate."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         fused=fused)


def _check_hyper(lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    if not lr >= 0.0:
        raise ValueError(f"lr must be >= 0, got {lr}")
    if not eps >= 0.0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"betas[{i}] must be in [0, 1), got {beta}")
    if not weight_decay >= 0.0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")


def _use_foreach(foreach: bool | None, params: list[Tensor]) -> bool:
    """Default like torch: the multi-tensor path when every parameter lives on an accelerator."""
    if foreach is not None:
        return foreach
    return all(p.device.type not in ("cpu", "meta") for p in params)
