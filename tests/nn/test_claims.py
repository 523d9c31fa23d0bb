"""The perceptron claim's measurements: the threshold's gradient, linear separability by a linear program,
Rosenblatt's rule and the 2-layer net on XOR."""

from __future__ import annotations

import numpy as np

from deepnotes.core.claims import registered_claims
from deepnotes.nn.claims import perceptron


def test_perceptron_claim_is_registered_with_its_paper_and_four_exact_tests():
    c = next(c for c in registered_claims(["activations"]) if c.id == "activations.perceptron_threshold")
    assert c.origin == "paper" and "Minsky" in c.paper.ref and c.source.note
    assert [t.name for t in c.tests] == ["gradient", "xor_one_unit", "perceptron_rule", "two_layer"]
    assert all(t.exact and t.decides for t in c.tests)


def test_threshold_gradient_is_zero_and_finite_differences_see_it_only_near_zero():
    grad, nonzero = perceptron.threshold_gradients(20_000, seed=0)
    assert grad == 0.0
    # central differences with step 1e-3 are nonzero within 1e-3 of 0: about 2e-3 * pdf(0) = 8e-4 of N(0, 1)
    assert 2e-4 < nonzero < 2e-3


def test_linear_program_separates_and_or_nand_but_not_xor_or_xnor():
    assert perceptron.separable(perceptron.TABLES["AND"]) and perceptron.separable(perceptron.TABLES["OR"])
    assert perceptron.separable(np.array([1, 1, 1, 0]))  # NAND
    assert not perceptron.separable(perceptron.TABLES["XOR"])
    assert not perceptron.separable(np.array([1, 0, 0, 1]))  # XNOR


def test_rosenblatt_rule_converges_on_and_and_cycles_on_xor():
    for seed in range(5):
        acc, epochs = perceptron.perceptron_rule(perceptron.TABLES["AND"], seed)
        assert acc == 1.0 and epochs > 0
        acc, epochs = perceptron.perceptron_rule(perceptron.TABLES["XOR"], seed, epochs=50)
        assert acc <= 0.75 and epochs == -1


def test_two_layer_net_computes_xor_and_one_hidden_unit_cannot():
    assert perceptron.two_layer_xor(0) == 1.0
    # one hidden tanh unit read out by a threshold is monotone in one projection: at most 3 of 4
    assert perceptron.two_layer_xor(0, hidden=1) <= 0.75
