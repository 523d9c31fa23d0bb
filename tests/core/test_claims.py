"""ClaimContext: sizes by mode, the work-folder cache that lets a killed report redo only one piece; the topic
registry that `deepnotes topics` and `reproduce --only` read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core import ClaimContext
from deepnotes.core.claims import CLAIM_TOPICS, TOPIC_MODULES, claim, registered_claims
from deepnotes.core.notes import NOTES, ORIGINS, notes_file


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
        claim("nosuch.x", "nosuch", "a statement", "a condition", tests=(), origin="library",
              source=None)


def test_topics_verb_lists_the_registry():
    res = CliRunner().invoke(app, ["topics"])
    assert res.exit_code == 0
    assert [line.split() for line in res.output.splitlines()] == [[t, m] for t, m in CLAIM_TOPICS.items()]


def test_every_claim_states_its_tests_origin_and_source():
    claims = registered_claims()
    assert len(claims) >= 27
    for c in claims:
        assert c.tests and any(t.decides for t in c.tests), c.id
        assert c.origin in ORIGINS and c.source is not None and c.source.note_key in NOTES, c.id
        assert c.source.translation, c.id
        if c.origin == "note":
            assert c.source.note, f"{c.id}: a note claim quotes its sentence"
        if c.origin == "paper":
            assert c.paper is not None and c.paper.ref and c.paper.figure, f"{c.id}: a paper claim names it"
        assert c.condition, c.id


def test_note_quotes_are_verbatim_sentences_of_the_seed_text():
    # a copy of the seed text travels with the tests; where the shared original is beside the repository (CI,
    # a developer's checkout) the copy must still equal it
    path = Path(__file__).resolve().parents[1] / "data" / "study-notes.txt"
    text = path.read_text(encoding="utf-8")
    shared = notes_file()
    if shared is not None:
        assert shared.read_text(encoding="utf-8") == text, f"{path} differs from {shared}: copy it again"
    assert len(NOTES) == 12
    missing = [n.key for n in NOTES.values() if n.opening not in text]
    assert not missing, f"note openings not in {path}: {missing}"
    wrong = [c.id for c in registered_claims() if c.source.note and c.source.note not in text]
    assert not wrong, f"quotes that are not verbatim substrings of {path}: {wrong}"
    assert any(c.source.note for c in registered_claims())


def test_repeats_draw_disjoint_seeds_per_report_seed_and_one_thread_restores(tmp_path):
    def ctx(seed):
        return ClaimContext(quick=True, seed=seed, device=torch.device("cpu"), out_dir=tmp_path)

    assert ctx(0).seeds(3) == [0, 1, 2]
    assert not set(ctx(1).seeds(5)) & set(ctx(2).seeds(5)) and not set(ctx(0).seeds(5)) & set(ctx(1).seeds(5))
    before = torch.get_num_threads()
    with ctx(0).one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with ctx(0).one_thread(False):
        assert torch.get_num_threads() == before
