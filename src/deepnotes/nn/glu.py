"""Transformer feed-forward blocks: the plain two-layer MLP and the gated (GLU-family) variants LLMs use.

Plain:  FFN(x)   = W2 act(W1 x),                   W1: d -> h,   W2: h -> d      (2 d h weights)
Gated:  FFN_g(x) = W2 (act(W x) ⊙ (V x)),          W, V: d -> h, W2: h -> d      (3 d h weights)

With the usual h = 4d the plain block has 8 d² weights; a gated block with h = (2/3)·4d = 8d/3 has the
same count (Shazeer 2020, "GLU Variants Improve Transformer"). :func:`gated_hidden_size` applies that rule.

Gate activations: GLU = sigmoid, ReGLU = ReLU, GEGLU = GELU, SwiGLU = Swish (SiLU). Here W and V are one
fused ``Linear(d, 2h)`` whose output splits into (value, gate): the result is ``value * act(gate)``, the
same split as ``torch.nn.functional.glu`` (first half times sigmoid of the second).
"""

from __future__ import annotations

import torch
from torch import nn

from deepnotes.nn.activations import get_activation


def gated_hidden_size(d_model: int, mult: float = 4.0, multiple_of: int = 1) -> int:
    """Hidden width of a gated FFN with the weight count of a plain FFN of width ``mult * d_model``.

    2/3 of ``mult * d_model``, rounded to the nearest multiple of ``multiple_of`` (LLaMA rounds up to 256 for
    kernel efficiency; 1 keeps the parameter counts as equal as possible).
    """
    if d_model < 1 or multiple_of < 1 or mult <= 0:
        raise ValueError(f"gated_hidden_size: need d_model >= 1, multiple_of >= 1, mult > 0 (got {d_model}, "
                         f"{multiple_of}, {mult})")
    h = 2.0 * mult * d_model / 3.0
    return max(multiple_of, int(round(h / multiple_of)) * multiple_of)


class FeedForward(nn.Module):
    """The plain transformer MLP: (..., d_model) -> (..., d_model) through ``hidden`` ``activation`` units."""

    def __init__(self, d_model: int, hidden: int | None = None, activation: str = "gelu", bias: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.hidden = hidden or 4 * d_model
        self.fc_in = nn.Linear(d_model, self.hidden, bias=bias)
        self.act = get_activation(activation)
        self.fc_out = nn.Linear(self.hidden, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc_out(self.act(self.fc_in(x))))


class GatedFeedForward(nn.Module):
    """A GLU-family block: (..., d_model) -> (..., d_model), ``value * act(gate)`` in the hidden layer.

    ``hidden=None`` uses :func:`gated_hidden_size` (parameter parity with a 4x plain FFN).
    """

    def __init__(self, d_model: int, hidden: int | None = None, activation: str = "silu", bias: bool = False,
                 dropout: float = 0.0, multiple_of: int = 1):
        super().__init__()
        self.hidden = hidden or gated_hidden_size(d_model, 4.0, multiple_of)
        self.fc_in = nn.Linear(d_model, 2 * self.hidden, bias=bias)  # fused value and gate projections
        self.act = get_activation(activation)
        self.fc_out = nn.Linear(self.hidden, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def gate(self, projected: torch.Tensor) -> torch.Tensor:
        """(..., 2h) -> (..., h): first half times act(second half)."""
        value, gate = projected.chunk(2, dim=-1)
        return value * self.act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc_out(self.gate(self.fc_in(x))))


class GLU(GatedFeedForward):
    """Gated FFN with a sigmoid gate (Dauphin et al. 2017)."""

    def __init__(self, d_model: int, hidden: int | None = None, **kw):
        super().__init__(d_model, hidden, activation="sigmoid", **kw)


class ReGLU(GatedFeedForward):
    """Gated FFN with a ReLU gate."""

    def __init__(self, d_model: int, hidden: int | None = None, **kw):
        super().__init__(d_model, hidden, activation="relu", **kw)


class GEGLU(GatedFeedForward):
    """Gated FFN with a GELU gate."""

    def __init__(self, d_model: int, hidden: int | None = None, **kw):
        super().__init__(d_model, hidden, activation="gelu", **kw)


class SwiGLU(GatedFeedForward):
    """Gated FFN with a Swish/SiLU gate (PaLM, LLaMA)."""

    def __init__(self, d_model: int, hidden: int | None = None, **kw):
        super().__init__(d_model, hidden, activation="silu", **kw)


# name -> feed-forward block class; "mlp" is the plain block (its activation chosen separately)
FEED_FORWARDS: dict[str, type[nn.Module]] = {
    "mlp": FeedForward,
    "glu": GLU,
    "reglu": ReGLU,
    "geglu": GEGLU,
    "swiglu": SwiGLU,
}


def get_feed_forward(name: str, d_model: int, **kwargs) -> nn.Module:
    """Build a feed-forward block by name (``mlp``, ``glu``, ``reglu``, ``geglu``, ``swiglu``)."""
    key = name.strip().lower()
    if key not in FEED_FORWARDS:
        raise ValueError(f"unknown feed-forward {name!r}; valid: {', '.join(FEED_FORWARDS)}")
    return FEED_FORWARDS[key](d_model, **kwargs)
