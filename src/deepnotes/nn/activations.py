"""Activation functions as modules, written from their formulas, behind one name lookup.

Every module maps a tensor of any shape to a tensor of the same shape (PReLU treats dim 1 as channels).
Gradients come from autograd through the formulas below, except for :class:`Step`, whose true derivative
is zero almost everywhere and which therefore uses a straight-through estimator.

The formulas are arranged so that no intermediate overflows in float32 (``exp`` only ever sees
non-positive numbers), because an ``inf`` inside a branch of ``torch.where`` poisons the gradient with NaN
even when that branch is not selected.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

# SELU's fixed point constants (Klambauer et al. 2017): with these, N(0, 1) inputs map to mean 0, variance 1.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _float32_inside(fn):
    """Evaluate ``fn(x, ...)`` in float32 for float16/bfloat16 ``x`` and round the result once, as torch's own
    kernels do: rounding every step of ``1 + erf(x / √2)`` in half precision loses the negative tails
    (GELU(-3.5) came out as -0 in bfloat16) and ``0.044715 x³`` overflows float16 for |x| > ~1200."""

    @functools.wraps(fn)
    def wrapped(x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if x.dtype in (torch.float16, torch.bfloat16):
            return fn(x.float(), *args, **kwargs).to(x.dtype)
        return fn(x, *args, **kwargs)

    return wrapped


def _nonneg(x: torch.Tensor) -> torch.Tensor:
    """max(x, 0) that lets NaN through (``clamp_min`` zeroes a NaN input's gradient)."""
    return torch.where(x < 0, 0.0, x)


def _nonpos(x: torch.Tensor) -> torch.Tensor:
    """min(x, 0) that lets NaN through."""
    return torch.where(x > 0, 0.0, x)


@_float32_inside
def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + e^-x). Each branch of the ``where`` only exponentiates non-positive numbers."""
    pos = 1.0 / (1.0 + torch.exp(-_nonneg(x)))
    e = torch.exp(_nonpos(x))
    return torch.where(x >= 0, pos, e / (1.0 + e))


@_float32_inside
def tanh(x: torch.Tensor) -> torch.Tensor:
    """(1 - e^-2x) / (1 + e^-2x) for x >= 0, its odd mirror for x < 0; expm1 keeps precision near 0."""
    zp = -2.0 * _nonneg(x)
    zn = 2.0 * _nonpos(x)
    return torch.where(x >= 0, -torch.expm1(zp) / (1.0 + torch.exp(zp)),
                       torch.expm1(zn) / (1.0 + torch.exp(zn)))


@_float32_inside
def softplus(x: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    """log(1 + e^(beta x)) / beta; exactly x once beta x > threshold (equal to float precision there).

    Written as bx + log1p(e^-bx) for bx > 0 and log1p(e^bx) otherwise: exp only sees values <= 0, so
    nothing overflows (e^20 does in float16, whose largest value is 65504), and the gradient at 0 is 1/2."""
    bx = beta * x
    pos, neg = _nonneg(bx), _nonpos(bx)
    soft = torch.where(bx > 0, pos + torch.log1p(torch.exp(-pos)), torch.log1p(torch.exp(neg))) / beta
    return torch.where(bx > threshold, x, soft)


@_float32_inside
def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """x for x > 0, alpha (e^x - 1) otherwise (NaN passes through, with torch's gradient 1 there)."""
    neg = torch.where(x <= 0, x, 0.0)  # NaN takes the x branch; this one then stays finite for it
    return torch.where(x <= 0, alpha * torch.expm1(neg), x)


@_float32_inside
def selu(x: torch.Tensor) -> torch.Tensor:
    """scale * ELU_alpha(x) with the self-normalising constants (rounded once in half precision)."""
    return SELU_SCALE * elu(x, SELU_ALPHA)


@_float32_inside
def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """x Φ(x), or its tanh approximation 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))).

    Evaluated as 0.5 x erfc(-x / √2) and x σ(2 √(2/π)(x + 0.044715 x³)), the same functions: ``1 + erf``
    and ``1 + tanh`` cancel to 0 in the negative tail (GELU(-5.5) = -1.6e-7 came out as -0 in float32)."""
    if approximate == "tanh":
        return x * sigmoid(2.0 * math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x))
    return 0.5 * x * torch.erfc(-x / math.sqrt(2.0))


@_float32_inside
def silu(x: torch.Tensor, beta: float | torch.Tensor = 1.0) -> torch.Tensor:
    """x σ(beta x)."""
    return x * sigmoid(beta * x)


@_float32_inside
def mish(x: torch.Tensor) -> torch.Tensor:
    """x tanh(softplus(x))."""
    return x * tanh(softplus(x))


class _StraightThroughStep(torch.autograd.Function):
    """Heaviside forward; backward passes the gradient where |x - threshold| <= clip (the clipped STE)."""

    @staticmethod
    def forward(ctx, x, threshold: float, low: float, clip: float):
        ctx.save_for_backward(x)
        ctx.threshold, ctx.clip = threshold, clip
        return torch.where(x > threshold, torch.ones_like(x), torch.full_like(x, low))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        passed = ((x - ctx.threshold).abs() <= ctx.clip).to(grad.dtype)
        return grad * passed, None, None, None


class Step(nn.Module):
    """The perceptron's threshold unit: 1 if x > threshold else ``low`` (0, or -1 for the sign variant).

    Its derivative is 0 everywhere except at the threshold, so nothing upstream could learn through it.
    The backward pass uses the straight-through estimator (Bengio et al. 2013): it pretends the unit was
    the identity inside a window ``|x - threshold| <= clip`` and zero outside. ``clip=inf`` gives the
    plain identity STE.
    """

    def __init__(self, threshold: float = 0.0, low: float = 0.0, clip: float = 1.0):
        super().__init__()
        if clip <= 0:
            raise ValueError(f"Step: clip must be > 0 (the straight-through window), got {clip}")
        self.threshold, self.low, self.clip = threshold, low, clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _StraightThroughStep.apply(x, self.threshold, self.low, self.clip)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, low={self.low}, clip={self.clip}"


class Sigmoid(nn.Module):
    """σ(x) = 1 / (1 + e^-x); σ'(x) = σ(x)(1 - σ(x)) <= 1/4, the root of vanishing gradients in deep nets."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sigmoid(x)


class Tanh(nn.Module):
    """tanh(x) = 2σ(2x) - 1: zero-centred, but still saturating (tanh' = 1 - tanh² -> 0 for |x| large)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tanh(x)


class ReLU(nn.Module):
    """max(0, x). Derivative 1 for x > 0 and 0 for x <= 0 (torch's convention at 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x <= 0, torch.zeros_like(x), x)  # NaN stays NaN, as in torch.relu


class LeakyReLU(nn.Module):
    """x for x > 0, ``negative_slope`` x otherwise: a unit pushed negative still receives gradient."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, self.negative_slope * x)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class PReLU(nn.Module):
    """LeakyReLU with a learned slope a: one shared (``num_parameters=1``) or one per channel (dim 1)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        if num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be >= 1, got {num_parameters}")
        self.num_parameters = num_parameters
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.weight.to(x.dtype)  # a float32 slope would promote half-precision inputs
        if self.num_parameters > 1:
            if x.dim() < 2 or x.shape[1] != self.num_parameters:
                raise ValueError(
                    f"PReLU has {self.num_parameters} slopes but input shape {tuple(x.shape)} has "
                    f"{x.shape[1] if x.dim() > 1 else 'no'} channels in dim 1"
                )
            a = a.view(1, -1, *([1] * (x.dim() - 2)))
        return torch.where(x > 0, x, a * x)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(nn.Module):
    """x for x > 0, alpha (e^x - 1) otherwise: smooth for alpha = 1, negative outputs push the mean to 0."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class SELU(nn.Module):
    """scale * ELU_alpha(x) with the self-normalising constants (alpha ≈ 1.6733, scale ≈ 1.0507)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return selu(x)


class GELU(nn.Module):
    """x Φ(x), Φ the normal CDF; ``approximate="tanh"``: 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³)))."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(nn.Module):
    """Swish: x σ(beta x). beta = 1 is SiLU; beta -> inf tends to ReLU, beta = 0 gives x / 2.

    ``learnable=True`` makes beta a parameter (the Swish paper's trainable variant).
    """

    def __init__(self, beta: float = 1.0, learnable: bool = False):
        super().__init__()
        if learnable:
            self.beta = nn.Parameter(torch.tensor(float(beta)))
        else:
            self.beta = float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return silu(x, self.beta)

    def extra_repr(self) -> str:
        return "learnable beta" if isinstance(self.beta, nn.Parameter) else f"beta={self.beta}"


class Mish(nn.Module):
    """x tanh(softplus(x)): smooth, non-monotonic, unbounded above and bounded below (≈ -0.31)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(x)


class Softplus(nn.Module):
    """log(1 + e^(beta x)) / beta: a smooth ReLU whose derivative is σ(beta x)."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        if beta <= 0:
            raise ValueError(f"Softplus: beta must be > 0, got {beta}")
        self.beta, self.threshold = beta, threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class _Preset:
    """A lookup entry: a class plus fixed keyword arguments (e.g. gelu_tanh = GELU(approximate="tanh"))."""

    def __init__(self, cls: type[nn.Module], **fixed):
        self.cls, self.fixed = cls, fixed

    def __call__(self, **kw) -> nn.Module:
        clash = set(kw) & set(self.fixed)
        if clash:
            raise ValueError(f"{', '.join(sorted(clash))} is fixed by this name; use {self.cls.__name__} "
                             "directly")
        return self.cls(**self.fixed, **kw)


# name -> constructor; names are what configs and the CLI accept (lower case)
ACTIVATIONS: dict[str, type[nn.Module] | _Preset] = {
    "step": Step,
    "sign": _Preset(Step, low=-1.0),
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "prelu": PReLU,
    "elu": ELU,
    "selu": SELU,
    "gelu": GELU,
    "gelu_tanh": _Preset(GELU, approximate="tanh"),
    "silu": SiLU,
    "swish": SiLU,
    "mish": Mish,
    "softplus": Softplus,
}


def get_activation(name: str, **kwargs) -> nn.Module:
    """Build an activation module by name, e.g. ``get_activation("leaky_relu", negative_slope=0.1)``.

    Unknown names raise ``ValueError`` listing the valid ones; unknown keyword arguments raise
    ``TypeError`` naming the class and its arguments.
    """
    key = name.strip().lower().replace("-", "_")
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    ctor = ACTIVATIONS[key]
    try:
        return ctor(**kwargs)
    except TypeError as exc:
        raise TypeError(f"activation {key!r}: {exc}") from exc
