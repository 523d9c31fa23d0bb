import json

import pytest
import torch
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core import claims as claims_mod
from deepnotes.core.claims import Outcome, claim, registered_claims
from deepnotes.core.device import pick_device
from deepnotes.core.notes import NOTES, Paper, Source
from deepnotes.core.registry import Registry
from deepnotes.core.report import reproduce
from deepnotes.core.verdict import Test, floor_reason

SOURCE = Source("adamw", None, "a made-up statement for the report's tests")


def _test(name="gap"):
    return Test(name, "B - A (units)", ">", 0.0)


@pytest.fixture
def fake_topic(monkeypatch):
    """Register four claims under a temporary topic: one holds, one is refuted, one raises, one cannot
    decide (its interval straddles the bound)."""
    # the topic registry is read-only and append-only: swap in a copy that also holds the fake topic
    topics = Registry("claim topic")
    for name, module in claims_mod.CLAIM_TOPICS.items():
        topics.register(name, module)
    topics.register("faketopic", "deepnotes.core.claims")
    monkeypatch.setattr(claims_mod, "CLAIM_TOPICS", topics)
    meta = {"origin": "library", "source": SOURCE}

    @claim("fake.holds", "faketopic", "one equals one", tests=_test(), **meta,
           paper=Paper("A. Author 2020", "Fig. 1: 1.0", "a toy"))
    def holds(ctx):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        ctx.save_plot(fig, "line")
        return Outcome({"x": 1.0, "n": ctx.pick(2, 20)}, samples=[1.0, 1.1, 0.9],
                       tables={"t": [{"a": 1, "b": 0.5}]})

    @claim("fake.fails", "faketopic", "two equals three", "x == 3", tests=_test(), **meta)
    def fails(ctx):
        return Outcome({"x": 2.0, "nan": float("nan"), "inf": float("inf"), "ninf": -float("inf")},
                       samples={"gap": [-1.0, -1.2, -0.9]},
                       tables={"t": [{"ratio": float("inf"), "err": float("nan"), "ok": 1.5}]})

    @claim("fake.raises", "faketopic", "this raises", "no exception", tests=_test(), **meta)
    def raises(ctx):
        raise RuntimeError("boom")

    @claim("fake.unsure", "faketopic", "noise", tests=(_test(), _test("floor")), **meta)
    def unsure(ctx):
        return Outcome({}, samples={"gap": [1.0, -1.0, 0.5], "floor": [0.0, 0.0]},
                       floor={"floor": floor_reason({"a": [0.0], "b": [0.0]}, "AP", floor=0.0)})

    yield "faketopic"
    # drop only the fake claims: a test may have imported real topics, whose claims must stay registered
    # (their modules stay imported, so they would not register again)
    for cid in [c for c, v in claims_mod._REGISTRY.items() if v.topic == "faketopic"]:
        del claims_mod._REGISTRY[cid]


def test_report_files_and_fields(tmp_path, fake_topic):
    results = reproduce(tmp_path, topics=[fake_topic], quick=True, seed=1)
    assert [r.claim.id for r in results] == ["fake.holds", "fake.fails", "fake.raises", "fake.unsure"]
    def strict(name):  # what jq, JavaScript or Go would make of NaN / Infinity: a parse error
        raise ValueError(f"results.json holds {name}, which is not JSON")

    data = json.loads((tmp_path / "results.json").read_text(), parse_constant=strict)
    assert data["claims"][1]["figures"]["inf"] is None and data["claims"][1]["figures"]["ninf"] is None
    assert data["claims"][1]["tables"]["t"] == [{"ratio": None, "err": None, "ok": 1.5}]
    first = data["claims"][0]
    assert set(first) >= {"id", "topic", "statement", "figures", "condition", "held", "error", "seconds",
                          "verdict", "estimate", "interval", "bound", "n", "source", "paper", "origin"}
    assert first["figures"] == {"x": 1.0, "n": 2} and first["held"] is True and first["error"] is None
    assert first["verdict"] == "held" and first["n"] == 3 and first["bound"] == 0.0
    assert first["estimate"] == pytest.approx(1.0) and first["interval"][0] > 0
    assert first["origin"] == "library"
    assert first["source"] == {"note": None, "translation": SOURCE.translation, "note_key": "adamw",
                               "note_title": NOTES["adamw"].title}
    assert first["paper"] == {"ref": "A. Author 2020", "figure": "Fig. 1: 1.0", "setting": "a toy"}
    assert data["claims"][1]["figures"]["nan"] is None and data["claims"][1]["held"] is False
    assert data["claims"][1]["verdict"] == "refuted" and data["claims"][1]["interval"][1] < 0
    assert "RuntimeError: boom" in data["claims"][2]["error"] and data["claims"][2]["held"] is False
    assert data["claims"][2]["verdict"] == "error" and data["claims"][2]["interval"] is None
    unsure = data["claims"][3]
    assert unsure["verdict"] == "inconclusive" and unsure["held"] is False
    assert [t["verdict"] for t in unsure["tests"]] == ["inconclusive", "inconclusive"]
    assert "floor" in unsure["tests"][1]["reason"] and "contains the bound" in unsure["reason"]
    assert data["counts"] == {"held": 1, "refuted": 1, "inconclusive": 1, "error": 1}
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in html and "<svg" in html and "refuted" in html
    # the notes come first, every claim a link to its section
    assert html.index(NOTES["adamw"].title) < html.index("<section")
    assert "href='#claim-fake-holds'" in html and "id='claim-fake-holds'" in html
    md = (tmp_path / "report.md").read_text()
    assert "1 held, 1 refuted, 1 inconclusive, 1 errors" in md and "plots/fake.holds-line.png" in md
    assert "(#claim-fake-unsure)" in md


def test_a_claim_returning_samples_for_undeclared_tests_is_an_error(tmp_path, fake_topic):
    @claim("fake.mislabelled", "faketopic", "s", tests=_test(), origin="library", source=SOURCE)
    def mislabelled(ctx):
        return Outcome({}, samples={"other": [1.0]})

    (result,) = reproduce(tmp_path, topics=["fake.mislabelled"])
    assert result.verdict == "error" and "not declared" in result.error


def test_claim_metadata_is_checked_at_registration(fake_topic):
    with pytest.raises(ValueError, match="origin"):
        claim("fake.o", "faketopic", "s", tests=_test(), origin="blog", source=SOURCE)
    with pytest.raises(ValueError, match="unknown note"):
        claim("fake.n", "faketopic", "s", tests=_test(), origin="library", source=Source("x", None, "t"))
    with pytest.raises(ValueError, match="quotes"):
        claim("fake.q", "faketopic", "s", tests=_test(), origin="note", source=SOURCE)
    with pytest.raises(ValueError, match="deciding"):
        claim("fake.d", "faketopic", "s", tests=Test("i", "i", ">", 0, decides=False), origin="library",
              source=SOURCE)


def test_report_refuses_to_overwrite_without_force(tmp_path, fake_topic):
    reproduce(tmp_path, topics=[fake_topic])
    with pytest.raises(FileExistsError, match="--force"):
        reproduce(tmp_path, topics=[fake_topic])
    reproduce(tmp_path, topics=[fake_topic], force=True)


def test_cli_exit_codes(tmp_path, fake_topic):
    runner = CliRunner()
    res = runner.invoke(app, ["reproduce", "--only", fake_topic, "--out", str(tmp_path / "r")])
    assert res.exit_code == 1  # a refuted claim and an error
    assert "fake.fails" in res.output and "fake.raises" in res.output
    assert "summary: 1 held, 1 refuted, 1 inconclusive, 1 errors" in res.output
    again = runner.invoke(app, ["reproduce", "--only", fake_topic, "--out", str(tmp_path / "r")])
    assert again.exit_code == 2 and again.stderr.startswith("error: ") and "--force" in again.stderr
    res = runner.invoke(app, ["reproduce", "--only", "nosuchtopic", "--out", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "valid:" in res.output
    assert not (tmp_path / "r2").exists()  # a mistyped topic leaves no empty report folder behind
    # held and inconclusive only: the run succeeds (inconclusive never fails a run)
    res = runner.invoke(app, ["reproduce", "--only", "fake.holds,fake.unsure", "--out", str(tmp_path / "r3")])
    assert res.exit_code == 0 and "summary: 1 held, 0 refuted, 1 inconclusive, 0 errors" in res.output
    res = runner.invoke(app, ["reproduce", "--only", "fake.fails", "--out", str(tmp_path / "r4")])
    assert res.exit_code == 1 and "REFUTED" in res.output


def test_only_accepts_claim_ids(tmp_path, fake_topic):
    results = reproduce(tmp_path, topics=["fake.fails"])
    assert [r.claim.id for r in results] == ["fake.fails"]
    assert ([c.id for c in registered_claims(["fake.raises", fake_topic])]
            == ["fake.holds", "fake.fails", "fake.raises", "fake.unsure"])
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
