import json

import pytest
import torch
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core import claims as claims_mod
from deepnotes.core.claims import Outcome, claim, registered_claims
from deepnotes.core.device import pick_device
from deepnotes.core.registry import Registry
from deepnotes.core.report import reproduce


@pytest.fixture
def fake_topic(monkeypatch):
    """Register three claims under a temporary topic: one holds, one does not, one raises."""
    # the topic registry is read-only and append-only: swap in a copy that also holds the fake topic
    topics = Registry("claim topic")
    for name, module in claims_mod.CLAIM_TOPICS.items():
        topics.register(name, module)
    topics.register("faketopic", "deepnotes.core.claims")
    monkeypatch.setattr(claims_mod, "CLAIM_TOPICS", topics)

    @claim("fake.holds", "faketopic", "one equals one", "x == 1")
    def holds(ctx):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        ctx.save_plot(fig, "line")
        return Outcome({"x": 1.0, "n": ctx.pick(2, 20)}, held=True, tables={"t": [{"a": 1, "b": 0.5}]})

    @claim("fake.fails", "faketopic", "two equals three", "x == 3")
    def fails(ctx):
        return Outcome({"x": 2.0, "nan": float("nan"), "inf": float("inf"), "ninf": -float("inf")},
                       held=False, tables={"t": [{"ratio": float("inf"), "err": float("nan"), "ok": 1.5}]})

    @claim("fake.raises", "faketopic", "this raises", "no exception")
    def raises(ctx):
        raise RuntimeError("boom")

    yield "faketopic"
    # drop only the fake claims: a test may have imported real topics, whose claims must stay registered
    # (their modules stay imported, so they would not register again)
    for cid in [c for c, v in claims_mod._REGISTRY.items() if v.topic == "faketopic"]:
        del claims_mod._REGISTRY[cid]


def test_report_files_and_fields(tmp_path, fake_topic):
    results = reproduce(tmp_path, topics=[fake_topic], quick=True, seed=1)
    assert [r.claim.id for r in results] == ["fake.holds", "fake.fails", "fake.raises"]
    def strict(name):  # what jq, JavaScript or Go would make of NaN / Infinity: a parse error
        raise ValueError(f"results.json holds {name}, which is not JSON")

    data = json.loads((tmp_path / "results.json").read_text(), parse_constant=strict)
    assert data["claims"][1]["figures"]["inf"] is None and data["claims"][1]["figures"]["ninf"] is None
    assert data["claims"][1]["tables"]["t"] == [{"ratio": None, "err": None, "ok": 1.5}]
    first = data["claims"][0]
    assert set(first) >= {"id", "topic", "statement", "figures", "condition", "held", "error", "seconds"}
    assert first["figures"] == {"x": 1.0, "n": 2} and first["held"] is True and first["error"] is None
    assert data["claims"][1]["figures"]["nan"] is None and data["claims"][1]["held"] is False
    assert "RuntimeError: boom" in data["claims"][2]["error"] and data["claims"][2]["held"] is False
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "did not hold" in html
    md = (tmp_path / "report.md").read_text()
    assert "1 held, 1 did not hold, 1 errors" in md and "plots/fake.holds-line.png" in md


def test_report_refuses_to_overwrite_without_force(tmp_path, fake_topic):
    reproduce(tmp_path, topics=[fake_topic])
    with pytest.raises(FileExistsError, match="--force"):
        reproduce(tmp_path, topics=[fake_topic])
    reproduce(tmp_path, topics=[fake_topic], force=True)


def test_cli_exit_codes(tmp_path, fake_topic):
    runner = CliRunner()
    res = runner.invoke(app, ["reproduce", "--only", fake_topic, "--out", str(tmp_path / "r")])
    assert res.exit_code == 1
    assert "fake.fails" in res.output and "fake.raises" in res.output
    again = runner.invoke(app, ["reproduce", "--only", fake_topic, "--out", str(tmp_path / "r")])
    assert again.exit_code == 2 and again.stderr.startswith("error: ") and "--force" in again.stderr
    res = runner.invoke(app, ["reproduce", "--only", "nosuchtopic", "--out", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "valid:" in res.output
    assert not (tmp_path / "r2").exists()  # a mistyped topic leaves no empty report folder behind


def test_only_accepts_claim_ids(tmp_path, fake_topic):
    results = reproduce(tmp_path, topics=["fake.fails"])
    assert [r.claim.id for r in results] == ["fake.fails"]
    assert ([c.id for c in registered_claims(["fake.raises", fake_topic])]
            == ["fake.holds", "fake.fails", "fake.raises"])
    with pytest.raises(ValueError, match="fake.nosuch"):
        registered_claims(["fake.holds", "fake.nosuch"])


def test_claim_id_imports_its_topic():
    claims = registered_claims(["optim.adamw_grid_less_coupled"])
    assert [(c.id, c.topic) for c in claims] == [("optim.adamw_grid_less_coupled", "optim")]


def test_unknown_topic_lists_valid():
    with pytest.raises(ValueError, match="valid: optim"):
        registered_claims(["nosuch"])


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="valid"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            pick_device("cuda")
