"""Our Adam/AdamW update compiled by torch.compile into a single pass over memory.

The eager paths run the update as ~8 separate elementwise kernels, each reading and writing whole tensors.
Here the same arithmetic is written once, element-wise, and inductor fuses it into one loop (C++/OpenMP on
CPU, Triton on CUDA) that reads p, g, m, v and writes p, m, v: 7 x 4 bytes per float32 parameter, the
memory-traffic floor of the algorithm. The kernel is generated from our function; no torch optimizer
kernel is involved.

Tensors are flattened to 1-D and compiled with a dynamic size, so one kernel serves every parameter shape;
large tensors get one call each, small ones are packed into one buffer per step (see ``PACK_BELOW``).
The eight scalars (sign, L2 factor, shrink, step size, bias correction, betas, eps) travel in one small
tensor ``h`` of the parameters' precision (float64 for float64 parameters, float32 otherwise), built once per
step: passed as Python floats they became double-precision 0-d tensors converted on every call, which
cost ~0.1 ms per parameter tensor and made the loop body mix double and float arithmetic (1.3x slower on
a 25M-element tensor). A learning-rate schedule changes values in ``h``, never the compiled code.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from deepnotes.optim.adam import _real, loop_update


def _moments(p: Tensor, g: Tensor, m: Tensor, v: Tensor, sign: Tensor, l2: Tensor, shrink: Tensor,
             beta1: Tensor, beta2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Decayed weight and new moments, as expressions (nothing written yet)."""
    g = sign * g + l2 * p  # sign = -1 maximizes; l2 = lambda for Adam, 0 for AdamW
    return p * shrink, m + (g - m) * (1 - beta1), v * beta2 + g * g * (1 - beta2)


def _adam_math(p: Tensor, g: Tensor, m: Tensor, v: Tensor, h: Tensor) -> None:
    """Element-wise update of 1-D tensors of equal length N, in place; ``h`` (8,) holds the scalars.

    Flags are folded into numbers (``sign``, ``l2``, ``shrink`` = 1 - lr lambda for AdamW, else 1) so that
    one compiled kernel serves Adam, AdamW and maximize without recompiling.
    """
    sign, l2, shrink, neg_step_size, inv_bc2_sqrt, beta1, beta2, eps = h.unbind(0)
    p_new, m_new, v_new = _moments(p, g, m, v, sign, l2, shrink, beta1, beta2)
    p.copy_(p_new + neg_step_size * m_new / (v_new.sqrt() * inv_bc2_sqrt + eps))
    m.copy_(m_new)
    v.copy_(v_new)


def _amsgrad_math(p: Tensor, g: Tensor, m: Tensor, v: Tensor, v_max: Tensor, h: Tensor) -> None:
    """As :func:`_adam_math`, normalising by the running maximum ``v_max`` of v (shape (N,))."""
    sign, l2, shrink, neg_step_size, inv_bc2_sqrt, beta1, beta2, eps = h.unbind(0)
    p_new, m_new, v_new = _moments(p, g, m, v, sign, l2, shrink, beta1, beta2)
    v_hat = torch.maximum(v_max, v_new)
    p.copy_(p_new + neg_step_size * m_new / (v_hat.sqrt() * inv_bc2_sqrt + eps))
    m.copy_(m_new)
    v.copy_(v_new)
    v_max.copy_(v_hat)


@functools.cache
def _compiled(amsgrad: bool):
    return torch.compile(_amsgrad_math if amsgrad else _adam_math, dynamic=True, fullgraph=True)


_DOUBLE = (torch.float64, torch.complex128)

# Tensors below this many elements are packed into one buffer per step and updated by a single call. Each
# compiled call costs ~0.08 ms of Python; packing costs ~56 more bytes of traffic per element (gather p, g,
# m, v; scatter p, m, v). Break-even is 0.08 ms x bandwidth / 56 B: ~30k elements on a CPU (~20 GB/s),
# ~6M on a GPU (~4 TB/s), where nearly every tensor of a model is better packed than launched alone.
PACK_BELOW = {"cpu": 65536, "default": 1 << 23}


def pack_below(device: torch.device) -> int:
    return PACK_BELOW.get(device.type, PACK_BELOW["default"])


def fused_update(lists: dict[str, list[Tensor]], *, lr: float, beta1: float, beta2: float, eps: float,
                 weight_decay: float, amsgrad: bool, maximize: bool, decoupled: bool) -> None:
    """Same contract as :func:`deepnotes.optim.adam.loop_update`; non-contiguous tensors take the loop path.

    Python work per tensor is kept to list indexing: step counters are advanced by one foreach call and
    read back at once, and packs are gathered and scattered by torch's C++ flatten/unflatten and
    ``_foreach_copy_`` (with hundreds of tensors, per-tensor Python calls cost more than a GPU update).
    """
    keys = ("params", "grads", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
    ours = [i for i in range(len(lists["params"])) if all(lists[k][i].is_contiguous() for k in keys)]
    if len(ours) < len(lists["params"]):
        taken = set(ours)
        rest = {key: [v for i, v in enumerate(values) if i not in taken] for key, values in lists.items()}
        loop_update(rest, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                    maximize=maximize, decoupled=decoupled)
    if not ours:
        return
    steps = [lists["step"][i] for i in ours]
    torch._foreach_add_(steps, 1)
    counts = torch.stack(steps).tolist()  # CPU scalars, as torch keeps them: no device sync

    fn = _compiled(amsgrad)
    sign, l2 = (-1.0 if maximize else 1.0), (0.0 if decoupled else weight_decay)
    shrink = 1 - lr * weight_decay if decoupled else 1.0
    scalars: dict[tuple[float, torch.device, torch.dtype], Tensor] = {}  # one h per step count and place
    packs: dict[tuple[float, torch.device, torch.dtype], list[int]] = {}
    for i, t in zip(ours, counts, strict=True):
        p = lists["params"][i]
        where = (t, p.device, p.dtype)
        if where not in scalars:
            scalars[where] = torch.tensor(
                [sign, l2, shrink, -lr / (1 - beta1**t), (1 - beta2**t) ** -0.5, beta1, beta2, eps],
                dtype=torch.float64 if p.dtype in _DOUBLE else torch.float32, device=p.device)
        if p.numel() < pack_below(p.device):
            packs.setdefault(where, []).append(i)
        else:
            fn(*(_real(lists[k][i]).view(-1) for k in keys), scalars[where])
    for where, members in packs.items():
        columns = [[lists[k][i] for i in members] for k in keys]
        if where[2].is_complex:
            columns = [[_real(t) for t in column] for column in columns]
        packed = [_flatten_dense_tensors(column) for column in columns]
        fn(*packed, scalars[where])
        for key, column, flat in zip(keys, columns, packed, strict=True):
            if key != "grads":  # written back: params and state
                torch._foreach_copy_(column, _unflatten_dense_tensors(flat, column))
