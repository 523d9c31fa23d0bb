"""deepnotes.nn.dropout against the definition of inverted dropout and torch's F.dropout."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from deepnotes.nn.dropout import dropout, keep_mask


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5, 0.9])
def test_drop_rate_and_expectation(p):
    """Drop fraction within 5 binomial standard deviations of p; the mean of the output equals the input's
    mean (kept values scaled by the inverse of the exact keep probability)."""
    torch.manual_seed(0)
    x = torch.ones(400_001)  # odd: the last 32-bit draw is half used
    y = dropout(x, p)
    n = x.numel()
    dropped = (y == 0).double().mean().item()
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n) + 1 / 32768
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - round(p * 32768) / 32768)))
    assert abs(y.double().mean().item() - 1) < 5 * math.sqrt(p / (1 - p) / n)


def test_both_halves_of_each_draw_are_uniform():
    """Each 32-bit draw feeds two elements; both positions must be uniform over the 32768 levels and
    independent of each other (a mistake in the bit split would bias one of them)."""
    torch.manual_seed(1)
    n = 1 << 20
    mask = keep_mask((n,), 0.5)
    for half in (mask[0::2], mask[1::2]):
        rate = half.double().mean().item()
        assert abs(rate - 0.5) < 5 * math.sqrt(0.25 / half.numel())
    both = (mask[0::2] & mask[1::2]).double().mean().item()
    assert abs(both - 0.25) < 5 * math.sqrt(0.25 * 0.75 / (n // 2))


def test_matches_torch_distribution_and_gradient():
    """Same first two moments as F.dropout; the gradient is the mask times the scale."""
    torch.manual_seed(2)
    x = torch.randn(512, 512, requires_grad=True)
    ours, theirs = dropout(x, 0.2), F.dropout(x, 0.2, True)
    for stat in (lambda t: t.mean(), lambda t: t.pow(2).mean()):
        assert abs(stat(ours).item() - stat(theirs).item()) < 0.02
    ours.sum().backward()
    scale = 1 / (1 - round(0.2 * 32768) / 32768)
    expected = torch.where(ours != 0, torch.full_like(x, scale), 0.0)  # x has no exact zeros
    torch.testing.assert_close(x.grad, expected)


def test_identity_cases_dtype_and_seed():
    x = torch.randn(3, 5, dtype=torch.bfloat16)
    assert dropout(x, 0.3, training=False) is x
    assert dropout(x, 0.0) is x
    assert dropout(x, 0.3).dtype == torch.bfloat16
    torch.manual_seed(3)
    a = dropout(torch.ones(1000), 0.3)
    torch.manual_seed(3)
    assert torch.equal(a, dropout(torch.ones(1000), 0.3))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        dropout(x, 1.0)


def test_traced_by_torch_compile_as_one_graph():
    """Under torch.compile the CPU bit tricks (a dtype-changing view) are left to the compiler's dropout."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    f = torch.compile(lambda x: dropout(x, 0.25) * 2, backend=counter)
    y = f(torch.ones(1000))
    assert counter.frame_count == 1
    assert 0.1 < (y == 0).float().mean().item() < 0.4
