"""Claim of the activations topic about the oldest activation, the perceptron's threshold: its gradient is
zero almost everywhere, and one threshold unit cannot compute XOR while two layers can."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.optimize import linprog

from deepnotes.core.claims import ClaimContext, Outcome, claim
from deepnotes.core.notes import Paper, Source
from deepnotes.core.verdict import Test

# the four corners of the unit square and the truth tables tested on them
CORNERS = np.array(list(itertools.product((0.0, 1.0), repeat=2)))  # (4, 2)
TABLES = {"AND": np.array([0, 0, 0, 1]), "OR": np.array([0, 1, 1, 1]), "XOR": np.array([0, 1, 1, 0])}


def threshold(x: torch.Tensor) -> torch.Tensor:
    """The threshold unit written with differentiable-looking torch ops, (sign(x) + 1) / 2 (1 above 0, 0
    below, 1/2 at 0): what autograd makes of its derivative is the measurement."""
    return (torch.sign(x) + 1) / 2


def threshold_gradients(n: int, seed: int) -> tuple[float, float]:
    """(max |d threshold / dx| by autograd, fraction of nonzero central differences with step 1e-3) at ``n``
    standard normal inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(threshold(x).sum(), x)
    with torch.no_grad():
        h = 1e-3
        finite = (threshold(x + h) - threshold(x - h)) / (2 * h)
    return float(grad.abs().max()), float((finite != 0).double().mean())


def separable(table: np.ndarray, margin: float = 1.0) -> bool:
    """Whether one threshold unit w.x + b computes ``table`` on :data:`CORNERS`: the linear program
    ``(2y - 1)(w.x + b) >= margin`` for every corner has a solution (any separating unit can be scaled to
    margin 1, so infeasible means no unit at all)."""
    sign = 2.0 * table - 1.0
    a_ub = -sign[:, None] * np.hstack([CORNERS, np.ones((4, 1))])  # -(s)(w.x + b) <= -margin
    res = linprog(np.zeros(3), A_ub=a_ub, b_ub=-margin * np.ones(4), bounds=[(None, None)] * 3,
                  method="highs")
    if res.status not in (0, 2):  # 0: solved, 2: infeasible; anything else is a solver failure
        raise RuntimeError(f"linprog: {res.message}")
    return res.status == 0


def perceptron_rule(table: np.ndarray, seed: int, epochs: int = 100) -> tuple[float, int]:
    """Rosenblatt's learning rule w += (y - f(w.x + b)) x on ``table``: (best accuracy over the epochs,
    epochs until an error-free pass; -1 when it never converged)."""
    rng = np.random.default_rng(seed)
    w, b, best = rng.normal(size=2), float(rng.normal()), 0.0
    for epoch in range(epochs):
        errors = 0
        for i in rng.permutation(4):
            out = float(CORNERS[i] @ w + b > 0)
            if out != table[i]:
                errors += 1
                w, b = w + (table[i] - out) * CORNERS[i], b + (table[i] - out)
        best = max(best, float(((CORNERS @ w + b > 0) == table).mean()))
        if errors == 0:
            return best, epoch + 1
    return best, -1


def two_layer_xor(seed: int, hidden: int = 8, steps: int = 500) -> float:
    """Accuracy on XOR of a 2-layer net (tanh hidden layer, trained by Adam on the logistic loss), read out
    through the threshold: the second layer is what one unit lacks. (With 4 hidden units and 2000 steps one
    seed of 20 stuck at 2 of 4, a known local minimum of small XOR nets; 8 units solved all 20.)"""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
    x, y = torch.tensor(CORNERS, dtype=torch.float32), torch.tensor(TABLES["XOR"], dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], y).backward()
        opt.step()
    with torch.no_grad():
        return float(((net(x)[:, 0] > 0).float() == y).float().mean())


NOTE_THRESHOLD = "该算法非常简单,其基本规则是:如果某个值超过某个阈值,则返回 1,否则返回 0。"
THRESHOLD_EN = ("The algorithm is very simple; its basic rule is: if a value exceeds a threshold, return 1, "
                "otherwise return 0. (The excerpt stops before the consequences: zero gradient, no XOR.)")


@claim(
    "activations.perceptron_threshold", "activations",
    "The perceptron's threshold activation has zero gradient almost everywhere (nothing upstream can "
    "learn through it by gradient descent), and one threshold unit cannot compute XOR, while a 2-layer "
    "net can.",
    tests=(
        Test("gradient", "max |d threshold(x) / dx| by autograd over 10^5 normal inputs", "<", 1e-12,
             method="exact"),
        Test("xor_one_unit", "whether one threshold unit w.x + b computes XOR on {0,1}^2 (linear "
             "program: 1 feasible, 0 infeasible)", "<", 0.5, method="exact"),
        Test("perceptron_rule", "best XOR accuracy of Rosenblatt's rule over its epochs, max over the seeds",
             "<", 1.0, method="exact"),
        Test("two_layer", "XOR accuracy of a 2-layer tanh net read out through the threshold, min over the "
             "seeds", ">", 0.99, method="exact"),
    ),
    origin="paper",
    source=Source("activations", NOTE_THRESHOLD, THRESHOLD_EN),
    paper=Paper("Minsky & Papert, Perceptrons, MIT Press 1969 (after Rosenblatt, The Perceptron, Psychol. "
                "Rev. 65(6), 1958)", "a single-layer perceptron cannot compute XOR (the predicate is not "
                "linearly separable); Rosenblatt's convergence theorem needs separable data",
                "Boolean functions of two inputs"),
)
def perceptron_threshold(ctx: ClaimContext) -> Outcome:
    seeds = ctx.seeds(ctx.pick(3, 10))
    grad_max, finite_frac = threshold_gradients(100_000, ctx.seed)
    rows, figures = [], {"autograd_grad_max": grad_max, "finite_difference_nonzero_fraction": finite_frac}
    for name, table in TABLES.items():
        rule = [perceptron_rule(table, s) for s in seeds]
        figures[f"{name}_separable"] = float(separable(table))
        figures[f"{name}_rule_best_accuracy"] = max(acc for acc, _ in rule)
        rows.append({"function": name, "one unit (LP)": "feasible" if separable(table) else "infeasible",
                     "rule: best accuracy": figures[f"{name}_rule_best_accuracy"],
                     "rule: epochs to converge": ", ".join(str(e) if e > 0 else "never" for _, e in rule)})
    two = [two_layer_xor(s) for s in seeds]
    figures["two_layer_xor_accuracy_min"] = min(two)
    samples = {"gradient": grad_max, "xor_one_unit": figures["XOR_separable"],
               "perceptron_rule": figures["XOR_rule_best_accuracy"], "two_layer": min(two)}
    return Outcome(figures, samples, tables={"Boolean functions of two inputs": rows},
                   notes=f"{len(seeds)} seeds for the rule (100 epochs) and the 2-layer net (8 tanh units, "
                         "500 Adam steps). Central differences with step 1e-3 are nonzero only within 1e-3 "
                         f"of the threshold ({finite_frac:.2e} of the normal inputs): the derivative is 0 "
                         "almost everywhere and undefined at 0. AND and OR are separable and the rule "
                         "converges on them; on XOR it cycles, never better than 3 of 4.")
