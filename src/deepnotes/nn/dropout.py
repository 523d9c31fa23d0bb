"""Dropout whose CPU path spends less on random numbers.

``torch.nn.functional.dropout`` on a CPU draws one 32-bit number from the Mersenne Twister per element
(~14 ns per element on the development machine: 22 ms for a 1024 x 1536 activation, a hundred times the
cost of the multiply it guards). Here one 32-bit draw serves two elements: each 16-bit half, masked to 15
bits, is a uniform integer in [0, 32768) and an element is kept when it is at least ``round(32768 p)``. So
the drop probability is ``p`` resolved to 1/32768 (0.05 -> 0.04999), and kept values are scaled by the
inverse of the exact keep probability, so the expectation is preserved exactly. About 3.5x faster than
``F.dropout`` on a CPU; the mask is kept as booleans for the backward (1 byte per element, as torch's).

On other devices, and inside torch.compile (which generates its own random-number kernel), torch's dropout
is used (on CUDA it is one fused kernel with a counter-based generator).
Both paths draw from torch's default generator, so ``torch.manual_seed`` makes them reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LEVELS = 1 << 15


def keep_mask(shape: torch.Size | tuple[int, ...], p: float,
              device: torch.device | str = "cpu") -> torch.Tensor:
    """Booleans of ``shape``, each True with probability ``1 - round(32768 p) / 32768``, independently."""
    n = int(torch.Size(shape).numel())
    bits = torch.empty((n + 1) // 2, dtype=torch.int32, device=device).random_()  # uniform on [0, 2^31)
    levels = bits.view(torch.int16)[:n].bitwise_and_(_LEVELS - 1)  # both halves: 15 uniform bits
    return (levels >= round(p * _LEVELS)).view(shape)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout: ``x`` with elements zeroed with probability ``p``, the rest scaled by ``1/(1-p)``.

    ``x``: any shape and floating dtype; returns the same shape and dtype.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or torch.compiler.is_compiling():  # compiled: the compiler's own RNG kernel
        return F.dropout(x, p, True)
    dropped = round(p * _LEVELS)
    keep = keep_mask(x.shape, p, x.device)
    return torch.where(keep, x * (_LEVELS / (_LEVELS - dropped)), 0.0)
