"""Counting the bytes a piece of PyTorch code holds alive, storage by storage, on any device (the meta device
included, where nothing is allocated), and a stand-in for fused attention kernels on the meta device.

:class:`LiveBytes` is a ``TorchDispatchMode``: every tensor an operator returns is looked at, and its storage,
the first time it is seen, counts its ``nbytes`` until Python's weak reference to the storage fires (storages
keep one Python object for their whole life, so the reference dies with the memory). Views and in-place
results share a storage and count once. The timeline (:attr:`LiveBytes.events`) lets callers split the
peak afterwards, e.g. into gradients and everything else.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def storage_key(t: torch.Tensor) -> int:
    """An id of ``t``'s storage (its C++ object), shared by every view of it."""
    return t.untyped_storage()._cdata


class LiveBytes(TorchDispatchMode):
    """Live bytes of the storages created inside the mode; ``known`` tensors (weights, optimizer state)
    existed before and are not counted. ``events``: ``(+bytes or -bytes, allocation number)`` in order
    (numbered, since a freed storage's address is reused by later ones)."""

    def __init__(self, known: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.events: list[tuple[int, int]] = []
        self._alive: dict[int, tuple[int, int]] = {storage_key(t): (-1, 0) for t in known}  # key: (number, n)
        self._count = itertools.count()

    def mark(self) -> int:
        """A position in :attr:`events` (e.g. the end of the forward pass)."""
        return len(self.events)

    def numbers(self, tensors: Iterable[torch.Tensor]) -> set[int]:
        """The allocation numbers of the live storages behind ``tensors``."""
        return {self._alive[k][0] for k in map(storage_key, tensors) if k in self._alive}

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self._alive:
            return
        n, number = storage.nbytes(), next(self._count)
        self._alive[key] = (number, n)
        self.live += n
        self.peak = max(self.peak, self.live)
        self.events.append((n, number))
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        number, n = self._alive.pop(key, (-1, 0))
        if n:
            self.live -= n
            self.events.append((-n, number))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out


class NoPadding(TorchDispatchMode):
    """Answers "yes" when code reads a boolean out of a meta tensor (``bool(mask.all())``): in a dry run
    the only such questions are whether a padding mask is all ones, and the dry run's batch has no padding.
    Any other value read from a meta tensor stays an error."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if (func is torch.ops.aten._local_scalar_dense.default and args[0].device.type == "meta"
                and args[0].dtype == torch.bool):
            return True
        return func(*args, **(kwargs or {}))


def peak_without(events: list[tuple[int, int]], excluded: set[int], stop: int | None = None) -> int:
    """The peak of the live bytes over ``events[:stop]`` not counting the allocations numbered in
    ``excluded``."""
    live = peak = 0
    for n, key in events[:stop]:
        if key not in excluded:
            live += n
            peak = max(peak, live)
    return peak


def rise_after(events: list[tuple[int, int]], start: int) -> int:
    """How far the live bytes rise above their level at ``events[start]`` afterwards (0: never above)."""
    live = sum(n for n, _ in events[:start])
    level, peak = live, live
    for n, _ in events[start:]:
        live += n
        peak = max(peak, live)
    return peak - level


class _FusedAttention(torch.autograd.Function):
    """What a fused attention kernel (flash, memory-efficient; torch's CPU flash kernel) keeps for the
    backward pass: queries, keys, values, the output and one fp32 log-sum-exp per query and head. No
    ``(heads, S, S)`` matrix; its backward returns the three input gradients."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = q.new_empty((*q.shape[:-1], v.shape[-1]))
        lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v, _out, _lse = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def fused_attention(device: str = "cuda"):
    """A ``scaled_dot_product_attention`` for a meta-device dry run with the memory of a fused kernel
    (shapes ``(B, H, S, D)`` in and out). On the meta device torch would take its unfused path and keep the
    ``(B, H, S, S)`` probabilities, which the GPU kernels never keep; torch's CPU kernel (``device="cpu"``)
    has no dropout, so with attention dropout the CPU, and this stand-in, take the unfused path."""
    unfused = torch.nn.functional.scaled_dot_product_attention

    def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask=None,
                  dropout_p: float = 0.0, is_causal: bool = False, scale=None,
                  enable_gqa: bool = False) -> torch.Tensor:
        if device == "cpu" and dropout_p > 0:
            return unfused(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                           scale=scale, enable_gqa=enable_gqa)
        return _FusedAttention.apply(query, key, value)

    return attention
