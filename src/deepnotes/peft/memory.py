"""Peak training memory of one optimizer step.

On CUDA: ``torch.cuda.max_memory_allocated``. On CPU (no allocator statistics) the same quantities are
accounted tensor by tensor: weights + gradients + optimizer state + the activations autograd saves for
the backward pass (captured with ``saved_tensors_hooks``, each storage counted once).
"""

from __future__ import annotations

import torch
from torch import nn


def _bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            continue
        s = t.untyped_storage()
        if s.data_ptr() in seen:
            continue
        seen.add(s.data_ptr())
        total += s.nbytes()
    return total


def training_step_bytes(model: nn.Module, batch: dict[str, torch.Tensor], opt: torch.optim.Optimizer) -> int:
    """Bytes needed by one ``forward + backward + step`` of ``model`` on ``batch``."""
    device = next(model.parameters()).device
    model.train()
    if device.type == "cuda":
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        model(**batch).loss.backward()
        opt.step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    opt.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    params = list(model.parameters())
    weights = _bytes(params)
    param_ptrs = {p.untyped_storage().data_ptr() for p in params}
    activations = _bytes(t for t in saved if t.untyped_storage().data_ptr() not in param_ptrs)
    loss.backward()
    opt.step()
    grads = _bytes(p.grad for p in params if p.grad is not None)
    state = _bytes(v for s in opt.state.values() for v in s.values()
                   if isinstance(v, torch.Tensor) and v.dim() > 0)
    return weights + grads + state + activations
