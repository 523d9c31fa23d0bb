import pytest
import torch
import torch.nn.functional as F

from deepnotes.core.timing import count_parameters
from deepnotes.nn.glu import (
    GEGLU,
    GLU,
    FeedForward,
    GatedFeedForward,
    ReGLU,
    SwiGLU,
    gated_hidden_size,
    get_feed_forward,
)


def test_glu_gate_matches_torch_glu():
    block = GLU(8, hidden=6)
    z = torch.randn(3, 5, 12)
    torch.testing.assert_close(block.gate(z), F.glu(z, dim=-1))


@pytest.mark.parametrize("cls,act", [(ReGLU, F.relu), (GEGLU, F.gelu), (SwiGLU, F.silu),
                                     (GLU, torch.sigmoid)])
def test_gated_blocks_compute_value_times_activated_gate(cls, act):
    torch.manual_seed(0)
    block = cls(16, hidden=24)
    x = torch.randn(2, 7, 16)
    w_value, w_gate = block.fc_in.weight[:24], block.fc_in.weight[24:]
    expected = (x @ w_value.T * act(x @ w_gate.T)) @ block.fc_out.weight.T
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("d", [64, 96, 384, 4096])
def test_two_thirds_rule_keeps_parameter_count_of_the_plain_block(d):
    with torch.device("meta"):  # shapes only: d = 4096 would allocate 200M floats
        plain, gated = count_parameters(FeedForward(d)), count_parameters(SwiGLU(d))
    assert gated_hidden_size(d) == round(8 * d / 3)
    assert abs(gated - plain) / plain < 3 / (8 * d) + 1e-12  # off by at most one rounded hidden unit


def test_multiple_of_rounding_and_bad_arguments():
    assert gated_hidden_size(4096, multiple_of=256) == 11008  # LLaMA-7B's FFN width
    assert gated_hidden_size(64, multiple_of=64) % 64 == 0
    with pytest.raises(ValueError, match="multiple_of"):
        gated_hidden_size(64, multiple_of=0)
    with pytest.raises(ValueError, match="valid: mlp, glu, reglu, geglu, swiglu"):
        get_feed_forward("moe", 16)
    with pytest.raises(ValueError, match="unknown activation"):
        GatedFeedForward(16, activation="nope")


def test_gated_block_backpropagates_to_both_projections():
    block = get_feed_forward("swiglu", 8)
    block(torch.randn(4, 8)).square().sum().backward()
    h = block.hidden
    assert block.fc_in.weight.grad[:h].abs().sum() > 0 and block.fc_in.weight.grad[h:].abs().sum() > 0
