"""LoRA layers that read the same input, computed as one group while training with dropout.

A group is the LoRA layers of one block that transformers calls on the same tensor (LLaMA's ``q_proj``/
``k_proj``/``v_proj`` and ``gate_proj``/``up_proj``: :attr:`~deepnotes.peft.methods.targets.Layout.
shared_input`). For its members ``i`` (base ``W_i``, bias ``c_i``, ``A_i: (r_i, in)``, ``B_i: (out_i,
r_i)``, scaling ``s_i``) and input ``x: (N, in)``::

    xd = dropout(x)                        one mask for the group
    h = xd @ cat(A_i)^T                    (N, R), R = sum r_i: one product for the group
    out_i = x @ W_i^T + c_i + s_i h_i B_i^T    (accumulated in place by addmm_)

Autograd differentiates it (its C++ nodes cost less host time than a Python ``autograd.Function``; see
docs/peft.md, Speed). Against one layer at a time this draws one dropout mask instead of three (two), reads
``x`` once for ``h`` and once for ``dA``, and gives ``x`` one low-rank gradient instead of three to add.

Dropout: the members share one mask, as peft's LoRA on GPT-2's fused ``c_attn`` shares one for the query,
key and value. Each member's input noise is distributed as peft's (every element dropped with probability
``p``, the rest scaled to keep the expectation); what differs from peft's separate layers is only that the
members' noise is the same draw. Without dropout there is nothing to share and layers run one at a time (a
group measured no faster there: docs/peft.md).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from deepnotes.nn.dropout import _LEVELS, keep_mask

# inputs with fewer elements use torch's dropout (measured on a 2-core CPU, 2026-12-07, under load: 1024
# elements fwd+bwd 53 us with torch's against 264 us with ours; equal at ~16k; ours ahead from ~1M)
SMALL_DROPOUT = 1 << 15

# (kind, weight, bias, a, b, scaling) of one member: what a layer hands over
Member = tuple[str, torch.Tensor, "torch.Tensor | None", torch.Tensor, torch.Tensor, float]


def drop(x: torch.Tensor, p: float) -> tuple[torch.Tensor, float]:
    """Training dropout of a layer's input ``x: (N, in)`` as ``(kept, gain)``: ``kept * gain`` is the
    dropped-out ``x``. The LoRA product is linear, so the gain goes into the scaling of ``addmm_`` (a
    scalar) instead of a pass over ``x`` and one over its gradient. On large CPU inputs the mask is
    deepnotes' (:func:`~deepnotes.nn.dropout.keep_mask`: half the random numbers of torch's; gain the inverse
    of its exact keep rate); elsewhere torch's dropout, already scaled (on small inputs ours issues seven
    operations to torch's one: it wins on a CPU step's inputs, torch's where the step is the host's time)."""
    if x.numel() < SMALL_DROPOUT or x.device.type != "cpu" or torch.compiler.is_compiling():
        return F.dropout(x, p, True), 1.0
    keep = keep_mask(x.shape, p, x.device)
    return torch.where(keep, x, 0.0), _LEVELS / (_LEVELS - round(p * _LEVELS))


def base_output(x: torch.Tensor, kind: str, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The base layer's output ``(N, out)`` for ``x: (N, in)`` (``nn.Linear``: weight ``out x in``;
    Conv1D: ``in x out``)."""
    if kind == "linear":
        return F.linear(x, weight, bias)
    return x @ weight if bias is None else torch.addmm(bias, x, weight)


def group_lora(x: torch.Tensor, p: float, members: list[Member]) -> list[torch.Tensor]:
    """Each member's output ``(N, out_i)`` for ``x: (N, in)`` with dropout ``p`` (module docstring)."""
    xd, gain = drop(x, p) if p > 0 else (x, 1.0)
    a = members[0][3] if len(members) == 1 else torch.cat([m[3] for m in members])  # (R, in)
    h = F.linear(xd, a)  # (N, R)
    outs, start = [], 0
    for kind, weight, bias, a_i, b, scaling in members:
        out = base_output(x, kind, weight, bias)
        outs.append(out.addmm_(h[:, start : start + a_i.shape[0]], b.t(), alpha=scaling * gain))
        start += a_i.shape[0]
    return outs


class Siblings:
    """A group's members and its cache: the first member called computes every member's output; the
    others take theirs if called on the same tensor, unchanged, in the same grad mode. Anything else
    (another input) finds nothing and the layer computes alone."""

    def __init__(self, members: tuple = ()) -> None:
        self.members = members  # the LoRA layers
        self.clear()

    @staticmethod
    def _key(x: torch.Tensor) -> tuple:
        return (id(x), x._version, torch.is_grad_enabled())

    def put(self, x: torch.Tensor, outputs: dict[int, torch.Tensor]) -> None:
        """Keep ``outputs`` (by ``id`` of the member) for the calls on ``x`` that follow."""
        self.key, self.outputs, self._x = self._key(x), outputs, x  # holding x keeps its id unique

    def take(self, member: object, x: torch.Tensor) -> torch.Tensor | None:
        """``member``'s output for ``x`` if the group computed it; None otherwise."""
        if self.key is None or self._x is not x or self.key != self._key(x):
            return None
        out = self.outputs.pop(id(member), None)
        if not self.outputs:
            self.clear()
        return out

    def clear(self) -> None:
        self.key: tuple | None = None
        self.outputs: dict[int, torch.Tensor] = {}
        self._x: torch.Tensor | None = None

    # a copied or pickled model starts with an empty cache (autograd's tensors cannot be copied)
    def __deepcopy__(self, memo: dict) -> Siblings:
        return Siblings(copy.deepcopy(self.members, memo))

    def __getstate__(self) -> dict:
        return {"members": self.members}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["members"])
