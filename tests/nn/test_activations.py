import math

import pytest
import torch
import torch.nn.functional as F

from deepnotes.nn.activations import ACTIVATIONS, PReLU, SiLU, Step, get_activation

# name, kwargs, torch reference
REFERENCES = [
    ("sigmoid", {}, torch.sigmoid),
    ("tanh", {}, torch.tanh),
    ("relu", {}, F.relu),
    ("leaky_relu", {"negative_slope": 0.1}, lambda x: F.leaky_relu(x, 0.1)),
    ("elu", {"alpha": 1.3}, lambda x: F.elu(x, 1.3)),
    ("selu", {}, F.selu),
    ("gelu", {}, F.gelu),
    ("gelu_tanh", {}, lambda x: F.gelu(x, approximate="tanh")),
    ("silu", {}, F.silu),
    ("swish", {}, F.silu),
    ("mish", {}, F.mish),
    ("softplus", {}, F.softplus),
    ("softplus", {"beta": 2.0, "threshold": 5.0}, lambda x: F.softplus(x, 2.0, 5.0)),
]


def _points(dtype=torch.float32):
    """Random values, exact zeros and saturating extremes, where naive formulas overflow."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, generator=g, dtype=dtype) * 4
    extremes = torch.tensor([0.0, -0.0, 1e-6, -1e-6, 30.0, -30.0, 100.0, -100.0, 3.0, -3.0], dtype=dtype)
    return torch.cat([x, extremes])


@pytest.mark.parametrize("name,kw,ref", REFERENCES, ids=[f"{r[0]}{r[1] or ''}" for r in REFERENCES])
def test_values_and_gradients_match_torch(name, kw, ref):
    x = _points().requires_grad_()
    xr = x.detach().clone().requires_grad_()
    y, yr = get_activation(name, **kw)(x), ref(xr)
    torch.testing.assert_close(y, yr, rtol=1e-5, atol=1e-6)
    w = torch.randn_like(y)
    (y * w).sum().backward()
    (yr * w).sum().backward()
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-5)  # float32 rounding of 1e-6 order


@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n not in ("step", "sign")])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_stays_finite_and_keeps_its_dtype(name, dtype):
    # e^20 overflows float16: softplus (and Mish through it) returned inf there, with NaN gradients
    x = torch.tensor([-30.0, -12.0, -1.0, 0.5, 5.0, 11.5, 12.0, 15.0, 19.0, 21.0, 30.0], dtype=dtype,
                     requires_grad=True)
    y = get_activation(name).to(dtype)(x)
    assert y.dtype == dtype and torch.isfinite(y).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    if name in ("softplus", "mish"):
        ref = (F.softplus if name == "softplus" else F.mish)(x.detach().float())
        torch.testing.assert_close(y.detach().float(), ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", [n for n in ACTIVATIONS if n not in ("step", "sign")])
def test_gradcheck_float64(name):
    mod = get_activation(name).double()
    # keep clear of the kinks at 0, where finite differences straddle two branches
    x = torch.linspace(-4, 4, 24, dtype=torch.float64)
    x = (x + 0.013).requires_grad_()
    assert torch.autograd.gradcheck(mod, (x,), eps=1e-6, atol=1e-5)


def test_prelu_per_channel_matches_torch_including_slope_gradient():
    x = torch.randn(4, 3, 5, 5)
    ours, ref = PReLU(3, init=0.2), torch.nn.PReLU(3, init=0.2)
    with torch.no_grad():
        ours.weight.copy_(torch.tensor([0.1, 0.2, 0.3]))
        ref.weight.copy_(ours.weight)
    torch.testing.assert_close(ours(x), ref(x))
    ours(x).square().sum().backward()
    ref(x).square().sum().backward()
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="3 slopes"):
        ours(torch.randn(2, 4, 5))
    assert ours(x.bfloat16()).dtype == torch.bfloat16  # a float32 slope does not promote half inputs


def test_swish_beta_formula_and_limits():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    torch.testing.assert_close(SiLU(beta=2.0)(x), x * torch.sigmoid(2.0 * x))
    torch.testing.assert_close(SiLU(beta=0.0)(x), x / 2)
    torch.testing.assert_close(SiLU(beta=50.0)(x[x.abs() > 0.5]), F.relu(x[x.abs() > 0.5]), atol=1e-9, rtol=0)
    learn = SiLU(beta=1.5, learnable=True).double()
    learn(x).sum().backward()
    expected = (x * x * torch.sigmoid(1.5 * x) * (1 - torch.sigmoid(1.5 * x))).sum()
    torch.testing.assert_close(learn.beta.grad, expected)


def test_step_forward_and_straight_through_gradient():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    y = Step()(x)
    torch.testing.assert_close(y, torch.heaviside(x.detach(), torch.tensor(0.0)))
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))  # clipped STE, |x| <= 1
    sign = get_activation("sign")(x.detach())
    torch.testing.assert_close(sign, torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0]))
    x2 = x.detach().clone().requires_grad_()
    Step(threshold=1.0, clip=math.inf)(x2).sum().backward()
    torch.testing.assert_close(x2.grad, torch.ones(5))


def test_step_trains_a_perceptron_through_the_straight_through_gradient():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 2, generator=g)
    target = (x[:, 0] + 0.5 * x[:, 1] > 0.2).float()
    lin, act = torch.nn.Linear(2, 1), Step()
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        F.mse_loss(act(lin(x)).squeeze(1), target).backward()
        opt.step()
    accuracy = (act(lin(x)).squeeze(1) == target).float().mean().item()
    assert accuracy > 0.95


def test_unknown_name_lists_valid_ones_and_bad_kwargs_are_named():
    with pytest.raises(ValueError, match="valid: step, sign, sigmoid"):
        get_activation("relu6")
    with pytest.raises(TypeError, match="'relu'"):
        get_activation("relu", slope=0.1)
    with pytest.raises(ValueError, match="fixed"):
        get_activation("gelu_tanh", approximate="none")
    assert isinstance(get_activation("Leaky-ReLU"), type(get_activation("leaky_relu")))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("name", "ref"), [("gelu", lambda x: F.gelu(x)),
                                           ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
                                           ("silu", F.silu), ("mish", F.mish), ("elu", F.elu),
                                           ("sigmoid", torch.sigmoid)])
def test_half_precision_is_computed_in_float32_and_rounded_once(name, ref, dtype):
    # rounding every step in half precision lost GELU's negative tail (GELU(-3.5) was -0 in bfloat16); the
    # reference is torch's function in float64 (torch's own float32 GELU returns -0 below x = -5.5; beyond
    # -5 even float64's 1 + tanh cancels, so the range stops there)
    x = torch.linspace(-5, 8, 2001, dtype=dtype)
    ours, exact = get_activation(name)(x), ref(x.double())
    assert ours.dtype == dtype
    eps = torch.finfo(dtype).eps
    assert ((ours.double() - exact).abs() <= 2 * eps * exact.abs() + torch.finfo(dtype).tiny).all()


def test_gelu_tanh_gradient_is_finite_for_large_float16_inputs():
    x = torch.tensor([-3000.0, -1500.0, 1500.0, 3000.0], dtype=torch.float16, requires_grad=True)
    # 0.044715 x³ overflowed float16 and the gradient became NaN
    get_activation("gelu_tanh")(x).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize(("name", "ref"), [("relu", F.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh),
                                           ("softplus", F.softplus), ("elu", F.elu), ("selu", F.selu),
                                           ("gelu", F.gelu), ("silu", F.silu), ("mish", F.mish)])
def test_nan_stays_nan_and_its_gradient_is_torchs(name, ref):
    # ReLU sent NaN to 0; clamp-based branches zeroed a NaN input's gradient
    x = torch.tensor([float("nan"), 1.0], requires_grad=True)
    y = get_activation(name)(x)
    y.sum().backward()
    x_ref = x.detach().clone().requires_grad_(True)
    ref(x_ref).sum().backward()
    assert torch.isnan(y[0])
    torch.testing.assert_close(x.grad, x_ref.grad, equal_nan=True)
