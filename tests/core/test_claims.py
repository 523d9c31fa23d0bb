"""ClaimContext: sizes by mode, the work-folder cache that lets a killed report redo only one piece; the topic
registry that `deepnotes topics` and `reproduce --only` read."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core import ClaimContext
from deepnotes.core.claims import CLAIM_TOPICS, TOPIC_MODULES, claim


def test_cached_reuses_a_result_while_its_key_holds(tmp_path):
    ctx = ClaimContext(quick=False, seed=0, device=torch.device("cpu"), out_dir=tmp_path, claim_id="t.x")
    assert ctx.pick(1, 2) == 2
    calls = []

    def work(value):
        calls.append(value)
        return {"loss": value, "curve": [(1, 2.0)]}

    first = ctx.cached("run", {"steps": 3}, lambda: work(0.5))
    assert first == {"loss": 0.5, "curve": [[1, 2.0]]}  # what a reuse returns too (JSON has no tuples)
    assert ctx.cached("run", {"steps": 3}, lambda: work(9.0)) == first and calls == [0.5]
    assert ctx.cached("run", {"steps": 4}, lambda: work(0.7))["loss"] == 0.7  # another key: computed again
    assert ctx.cached("other", {"steps": 4}, lambda: work(0.8))["loss"] == 0.8 and calls == [0.5, 0.7, 0.8]


def test_claim_topics_are_one_read_only_registry_under_both_names():
    assert TOPIC_MODULES is CLAIM_TOPICS and isinstance(CLAIM_TOPICS, Mapping)
    assert list(CLAIM_TOPICS)[:4] == ["optim", "stochastic_approx", "activations", "upsampling"]
    assert TOPIC_MODULES["activations"] == "deepnotes.nn.claims" and "calib" in TOPIC_MODULES
    with pytest.raises(TypeError):
        TOPIC_MODULES["new"] = "x"  # registered with CLAIM_TOPICS.register, never by assignment
    with pytest.raises(ValueError, match="unknown claim topic 'nosuch'; valid: optim, stochastic_approx"):
        claim("nosuch.x", "nosuch", "a statement", "a condition")


def test_topics_verb_lists_the_registry():
    res = CliRunner().invoke(app, ["topics"])
    assert res.exit_code == 0
    assert [line.split() for line in res.output.splitlines()] == [[t, m] for t, m in CLAIM_TOPICS.items()]
