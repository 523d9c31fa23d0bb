import math

import pytest
import torch
from torch.autograd.functional import jacobian

from deepnotes.pose.flow import RealNVP


@pytest.fixture(scope="module")
def flow():
    torch.manual_seed(0)
    f = RealNVP(layers=6, hidden=16).double()
    with torch.no_grad():  # move well away from the identity initialisation
        for p in f.parameters():
            p.normal_(0, 0.4)
    return f


def test_log_det_matches_autograd_jacobian(flow):
    x = torch.randn(8, 2, dtype=torch.float64)
    _, log_det = flow(x)
    for i in range(len(x)):
        jac = jacobian(lambda p: flow(p[None])[0][0], x[i])
        assert log_det[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-9)


def test_inverse_undoes_forward(flow):
    x = torch.randn(64, 2, dtype=torch.float64)
    assert torch.allclose(flow.inverse(flow(x)[0]), x, atol=1e-9)


def test_density_integrates_to_one(flow):
    g = torch.linspace(-12, 12, 241, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="xy")
    p = flow.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp()
    assert (p.sum() * (g[1] - g[0]) ** 2).item() == pytest.approx(1.0, abs=2e-3)


def test_fresh_flow_is_close_to_a_standard_normal():
    f = RealNVP()
    x = torch.randn(32, 2)
    want = -0.5 * (x**2).sum(1) - math.log(2 * math.pi)
    assert torch.allclose(f.log_prob(x), want, atol=1e-2)


def test_flow_learns_a_skewed_density():
    torch.manual_seed(1)
    f = RealNVP(layers=4, hidden=16)
    data = torch.stack([torch.distributions.Exponential(1.0).sample((256,)) - 1, torch.randn(256) * 0.5], 1)
    opt = torch.optim.Adam(f.parameters(), lr=2e-2)
    before = -f.log_prob(data).mean().item()
    for _ in range(60):
        opt.zero_grad()
        loss = -f.log_prob(data).mean()
        loss.backward()
        opt.step()
    assert loss.item() < before - 0.4
