"""ClaimContext: sizes by mode, and the work-folder cache that lets a killed report redo only one piece."""

from __future__ import annotations

import torch

from deepnotes.core import ClaimContext


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
