"""Our Adam/AdamW update compiled by torch.compile into a single pass over memory.

The eager paths run the update as ~8 separate elementwise kernels, each reading and writing whole tensors.
Here the same arithmetic is written once, element-wise, and inductor fuses it into one loop (C++/OpenMP on
CPU, Triton on CUDA) that reads p, g, m, v and writes p, m, v: 7 x 4 bytes per float32 parameter, the
memory-traffic floor of the algorithm. The kernel is generated from our function; no torch optimizer
kernel is involved.

Tensors are flattened to 1-D and compiled with a dynamic size, so one kernel serves every parameter shape.
What remains is host work per tensor, which with hundreds of tensors costs more than a GPU update itself.
Two ways keep it down:

- Small tensors (under ``PACK_BELOW`` elements) of one device, dtype and step count form a *pack* whose
  optimizer state lives in flat buffers: ``state[p]["exp_avg"]``, ``["exp_avg_sq"]`` (and
  ``["max_exp_avg_sq"]``) are views into them and ``state[p]["step"]`` is a 0-d view into one step
  vector. A step then gathers params and grads into flat buffers, runs one compiled call, scatters the
  params back and advances every step counter with one add: no per-tensor Python, and the state is never
  copied. The layout (a :class:`_Plan`) is kept between steps and rebuilt, with the current state values
  carried over, when the set of parameters with gradients changes, a state tensor was replaced (e.g. by
  ``load_state_dict``) or a step counter was written. ``state_dict()`` holds views; torch.save and our
  checkpoints store them as usual.
- Large tensors are updated in place, with no copy, ``CHUNK`` of them per compiled call.

The eight scalars (sign, L2 factor, shrink, step size, bias correction, betas, eps) travel in one small
tensor ``h`` of the parameters' precision (float64 for float64 parameters, float32 otherwise), built once per
step and step count: passed as Python floats they became double-precision 0-d tensors converted on every
call. A learning-rate schedule changes values in ``h``, never the compiled code.
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from torch._utils import _unflatten_dense_tensors

from deepnotes.optim.update import loop_update, real_view


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

# Tensors below this many elements are packed. A large tensor costs its share of a chunk's compiled call in
# host time per step: ~12 us on the development CPU (~0.1 ms / CHUNK), ~54 us on an H200 (~0.4 ms per call,
# `optim_step.py --impls ours-fused_nopack`). A packed one costs 24 more bytes of traffic per float32 element
# (gather p and g, scatter p; the state is already flat) and 8 bytes of gather buffers (p and g).
# Break-even is host time x bandwidth / 24 B: ~10k elements on a CPU (~20 GB/s), ~9M on an H200 (~4 TB/s).
# The CPU threshold sits higher, where a model's vectors (biases, norms) and its matrices usually part; the
# GPU one lower, at 2M, to keep the gather buffers' memory to the smaller tensors.
PACK_BELOW = {"cpu": 65536, "default": 1 << 21}


def pack_below(device: torch.device) -> int:
    return PACK_BELOW.get(device.type, PACK_BELOW["default"])


def _state_keys(amsgrad: bool) -> tuple[str, ...]:
    return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())


@dataclass
class _Pack:
    """Small tensors of one device, dtype and step count; their state is views into ``flat``."""

    members: list[int]  # positions in the group's per-step lists
    flat: dict[str, Tensor]  # state key -> flat buffer; "params", "grads": scratch the step gathers into
    views: dict[str, list[Tensor]]  # state key (and "step") -> the tensors installed in the optimizer state
    param_views: list[Tensor]  # views of flat["params"], shaped like the params
    grad_views: list[Tensor]  # views of flat["grads"]

    def intact(self, lists: Mapping[str, list[Tensor]]) -> bool:
        """True while the optimizer state still holds our views and they share one step count."""
        lo, hi = torch.aminmax(self.flat["step"])  # differs only if someone wrote into a step counter
        return lo.item() == hi.item() and all(
            all(map(operator.is_, [lists[key][i] for i in self.members], views))
            for key, views in self.views.items())


@dataclass
class _Plan:
    signature: tuple[int, ...]  # ids of the group's parameters that have a gradient, in order
    keys: tuple[str, ...]  # state keys (with amsgrad, max_exp_avg_sq too)
    packs: list[_Pack]
    alone: list[int]  # positions updated in place (large or complex tensors), see _update_alone


def _make_pack(members: list[int], lists: dict[str, list[Tensor]], state: Mapping[Tensor, dict],
               keys: tuple[str, ...]) -> _Pack:
    """Move the state of ``members`` into flat buffers (values carried over) and install views of them."""
    params = [lists["params"][i] for i in members]
    total = sum(p.numel() for p in params)
    flat = {key: params[0].new_empty(total) for key in ("params", "grads", *keys)}
    views: dict[str, list[Tensor]] = {}
    for key in keys:
        views[key] = list(_unflatten_dense_tensors(flat[key], params))
        torch._foreach_copy_(views[key], [lists[key][i] for i in members])
    flat["step"] = torch.stack([lists["step"][i].to("cpu", torch.float32) for i in members])
    views["step"] = list(flat["step"].unbind(0))
    for j, i in enumerate(members):
        for key, values in views.items():
            state[lists["params"][i]][key] = lists[key][i] = values[j]
    return _Pack(members, flat, views, list(_unflatten_dense_tensors(flat["params"], params)),
                 list(_unflatten_dense_tensors(flat["grads"], params)))


def _make_plan(lists: dict[str, list[Tensor]], state: Mapping[Tensor, dict], keys: tuple[str, ...]) -> _Plan:
    counts = torch.stack([s.to("cpu", torch.float32) for s in lists["step"]]).tolist()
    groups: dict[tuple[float, torch.device, torch.dtype], list[int]] = {}
    alone = []
    for i, p in enumerate(lists["params"]):
        if p.is_complex() or p.numel() >= pack_below(p.device):
            alone.append(i)
        else:
            groups.setdefault((counts[i], p.device, p.dtype), []).append(i)
    packs = [_make_pack(members, lists, state, keys) for members in groups.values()]
    return _Plan(tuple(map(id, lists["params"])), keys, packs, alone)


def fused_update(lists: dict[str, list[Tensor]], state: Mapping[Tensor, dict], plans: dict[int, _Plan],
                 group: int, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                 amsgrad: bool, maximize: bool, decoupled: bool) -> None:
    """Same contract as :func:`deepnotes.optim.update.loop_update`, plus the optimizer's ``state`` (the
    per-parameter dicts, where pack views are installed) and ``plans``, the layouts kept between steps
    (keyed by param-group index ``group``)."""
    keys = _state_keys(amsgrad)
    plan = plans.get(group)
    if (plan is None or plan.keys != keys or plan.signature != tuple(map(id, lists["params"]))
            or not all(pack.intact(lists) for pack in plan.packs)):
        plan = plans[group] = _make_plan(lists, state, keys)

    fn = _compiled(amsgrad)
    sign, l2 = (-1.0 if maximize else 1.0), (0.0 if decoupled else weight_decay)
    shrink = 1 - lr * weight_decay if decoupled else 1.0

    @functools.cache
    def scalars(t: float, device: torch.device, dtype: torch.dtype) -> Tensor:
        values = [sign, l2, shrink, -lr / (1 - beta1**t), (1 - beta2**t) ** -0.5, beta1, beta2, eps]
        h = torch.tensor(values, dtype=torch.float64 if dtype in _DOUBLE else torch.float32)
        if device.type != "cuda":
            return h.to(device)
        # a blocking copy from pageable memory would wait for every kernel already queued (the backward pass)
        # before the host could go on; from pinned memory the copy is queued like a kernel
        return h.pin_memory().to(device, non_blocking=True)

    for pack in plan.packs:
        t = pack.flat["step"].add_(1)[0].item()
        params = [lists["params"][i] for i in pack.members]
        torch._foreach_copy_(pack.param_views, params)
        # grads gathered like the params, by a multi-tensor copy into views kept with the pack: torch.cat of
        # hundreds of grads ran at ~40% of that copy's bandwidth on an H200 (0.93 vs 0.38 ms for 166M float32
        # grads), and on a CPU a fresh buffer each step costs page faults
        torch._foreach_copy_(pack.grad_views, [lists["grads"][i] for i in pack.members])
        p = pack.flat["params"]
        fn(p, pack.flat["grads"], *(pack.flat[key] for key in keys), scalars(t, p.device, p.dtype))
        torch._foreach_copy_(params, pack.param_views)
    _update_alone(plan.alone, lists, fn, scalars, keys, hyper=dict(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
        maximize=maximize, decoupled=decoupled))


def _update_alone(alone: list[int], lists: dict[str, list[Tensor]], fn, scalars, keys: tuple[str, ...],
                  hyper: dict) -> None:
    """Large tensors in place: ``CHUNK`` per compiled call, the remainder one call each; tensors that cannot
    be viewed as 1-D take the loop path."""
    columns = ("params", "grads", *keys)
    flat_ok = [i for i in alone if all(lists[k][i].is_contiguous() for k in columns)]
    if len(flat_ok) < len(alone):
        taken = set(flat_ok)
        rest = [i for i in alone if i not in taken]
        loop_update({key: [values[i] for i in rest] for key, values in lists.items()}, **hyper)
    if not flat_ok:
        return
    steps = [lists["step"][i] for i in flat_ok]
    torch._foreach_add_(steps, 1)
    # one by one: counters loaded by torch's load_state_dict into a fused group sit on the parameter's device,
    # fresh ones on the CPU, and a stack of both would fail (large tensors are few, so this is cheap)
    groups: dict[tuple[float, torch.device, torch.dtype], list[int]] = {}
    for i, t in zip(flat_ok, [s.item() for s in steps], strict=True):
        groups.setdefault((t, lists["params"][i].device, lists["params"][i].dtype), []).append(i)
    for (t, device, dtype), members in groups.items():
        h = scalars(t, device, dtype)
        rows = [[real_view(lists[k][i]).view(-1) for k in columns] for i in members]
        whole = len(rows) - len(rows) % CHUNK
        for start in range(0, whole, CHUNK):
            with _no_duck_shapes():
                _compiled_chunk()(*zip(*rows[start:start + CHUNK], strict=True), h)
        for row in rows[whole:]:
            fn(*row, h)


# Large tensors are updated CHUNK per compiled call: each call costs ~0.1 ms of host time (guards, wrappers)
# whatever it does, and one graph over CHUNK tensors runs CHUNK kernels for the price of one call. A fixed
# length keeps it to one compiled graph per dtype; the remainder uses the single-tensor function.
CHUNK = 8


def _each(*args: tuple[Tensor, ...] | Tensor) -> None:
    """:func:`_adam_math` (4 columns, then h) or :func:`_amsgrad_math` (5 columns, then h) on every row;
    a column is a tuple of CHUNK 1-D tensors."""
    *columns, h = args
    math = _amsgrad_math if len(columns) == 5 else _adam_math
    for row in zip(*columns, strict=True):
        math(*row, h)


@functools.cache
def _compiled_chunk():
    return torch.compile(_each, dynamic=True, fullgraph=True)


def _no_duck_shapes():
    """Give every tensor of a chunk its own symbolic size. By default equal sizes share one symbol, which
    guards on the equality and recompiles for each new pattern of equal sizes among the CHUNK tensors."""
    from torch.fx.experimental import _config

    if not hasattr(_config, "use_duck_shape"):  # a private switch; without it equal sizes cost recompiles
        return contextlib.nullcontext()
    return _config.patch(use_duck_shape=False)
