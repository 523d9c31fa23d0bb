"""Training memory of one real optimizer step.

:func:`measure_peak` is the reference the estimate is checked against: on CUDA
``torch.cuda.max_memory_allocated``; on a CPU, which keeps no allocator statistics, the CPU allocator's own
events — ``torch.profiler`` with ``profile_memory=True`` records every allocation and free the allocator
serves, with its size — summed in time order, their running maximum added to the bytes alive before the step
(weights, buffers, optimizer states, the batch).

:func:`training_step_bytes` (the claims' figure) accounts the same quantities tensor by tensor instead:
weights + gradients + optimizer state + the activations autograd saves for the backward pass (captured with
``saved_tensors_hooks``, each storage counted once); on CUDA it reads the allocator's peak too.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile


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


def _live_before(model: nn.Module, batch: dict[str, torch.Tensor], opt: torch.optim.Optimizer) -> int:
    state = [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return _bytes([*model.parameters(), *model.buffers(), *state, *batch.values()])


def measure_peak(model: nn.Module, batch: dict[str, torch.Tensor], opt: torch.optim.Optimizer) -> int:
    """Peak bytes of one steady-state training step of ``model`` on ``batch`` (forward with the loss,
    backward, ``opt.step()``, ``zero_grad``), after a first step that creates the optimizer's state."""
    device = next(model.parameters()).device
    model.train()

    def step() -> None:
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    before = _live_before(model, batch, opt)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    running = peak = 0
    for _, n in events:
        running += n
        peak = max(peak, running)
    return before + peak
