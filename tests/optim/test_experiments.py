"""The pieces behind the optim claims and CLI: grouped grid CNN, coupling metric, effective decay, verbs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepnotes.optim import AdamW
from deepnotes.optim.cli import app
from deepnotes.optim.decay import effective_decay, loglog_slope
from deepnotes.optim.digits_grid import Grid, GridCNN, optimum_coupling, small_cnn


def test_grid_cnn_members_are_independent_small_cnns():
    torch.manual_seed(0)
    model = GridCNN(3, width=4)
    with torch.no_grad():
        model.members[2][0].mul_(2.0)  # members differ after this
    x = torch.randn(5, 1, 8, 8)
    out = model(x)
    assert out.shape == (5, 3, 10)
    for i in range(3):
        torch.testing.assert_close(out[:, i], model.member(i)(x), rtol=1e-5, atol=1e-6)
    # a loss on member 0 gives no gradient to the others
    out[:, 0].sum().backward()
    assert all(p.grad is None or torch.all(p.grad == 0) for p in model.members[1])
    assert model.members[0][0].grad.abs().sum() > 0


def test_grid_cnn_training_step_equals_separate_models():
    """One AdamW step of the grouped net with per-member lr equals stepping each small_cnn on its own."""
    grid_model = GridCNN(2, width=4, seed=1)
    singles = [grid_model.member(i) for i in range(2)]
    lrs = [1e-2, 3e-3]
    opt = AdamW([{"params": list(m), "lr": lr} for m, lr in zip(grid_model.members, lrs, strict=True)])
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    loss = torch.nn.functional.cross_entropy(grid_model(x).permute(0, 2, 1), y.unsqueeze(1).expand(-1, 2),
                                             reduction="sum") / 6
    loss.backward()
    opt.step()
    for model, lr, i in zip(singles, lrs, range(2), strict=True):
        single_opt = AdamW(model.parameters(), lr=lr)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        single_opt.step()
        for a, b in zip(model.parameters(), grid_model.members[i], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_small_cnn_shape():
    assert small_cnn()(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_optimum_coupling_recovers_a_known_diagonal_and_a_flat_optimum():
    lrs = np.logspace(-3, -1, 5)
    decays = np.logspace(-5, -1, 9)
    log_lr, log_d = np.meshgrid(np.log10(lrs), np.log10(decays), indexing="ij")
    diagonal = -((log_d - (-2 - (log_lr + 3))) ** 2)  # best decay = 1e-2 * (1e-3 / lr): slope -1
    flat = -((log_d + 3) ** 2) - (log_lr + 2) ** 2  # best decay 1e-3 for every lr: slope 0
    grid = Grid(lrs, {"a": decays, "b": decays}, {"a": diagonal, "b": flat})
    assert optimum_coupling(grid, "a")[0] == pytest.approx(-1.0)
    slope, best = optimum_coupling(grid, "b")
    assert slope == pytest.approx(0.0) and np.allclose(best, 1e-3)


def test_effective_decay_is_one_over_sigma_for_adam_and_flat_for_adamw():
    sigmas = np.array([0.5, 2.0, 8.0])
    res = effective_decay(sigmas, steps=100, replicates=200, seed=0)
    assert loglog_slope(sigmas, res.kappa["Adam"]) == pytest.approx(-1.0, abs=0.15)
    assert np.allclose(res.kappa["AdamW"], 1.0, atol=0.05)


def test_cli_mean_skips_and_reports_bad_lines(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("1.5\n# comment\n2.5\nnot-a-number\nnan\n5\n")
    result = CliRunner().invoke(app, ["mean", str(path)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {"file": str(path), "count": 3, "mean": 3.0, "skipped": 2}
    assert "4, 5" in result.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("oops\n")
    result = CliRunner().invoke(app, ["mean", str(empty)])
    assert result.exit_code == 2 and "holds no numbers" in result.stderr


def test_cli_sa_demo_refuses_a_bad_schedule_and_plots_a_good_one(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["sa-demo", "--schedule", "1/k^0.4", "--steps", "10",
                              "--out", str(tmp_path / "a.png")])
    assert bad.exit_code == 2 and "sum a_k^2 = inf" in bad.stderr
    garbled = runner.invoke(app, ["sa-demo", "--schedule", "k*2", "--out", str(tmp_path / "a.png")])
    assert garbled.exit_code == 2 and "expected e.g." in garbled.stderr
    ok = runner.invoke(app, ["sa-demo", "--schedule", "1/k", "--schedule", "const:0.1",
                             "--allow-nonconvergent",
                             "--steps", "200", "--replicates", "20", "--out", str(tmp_path / "b.png")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "b.png").stat().st_size > 0
    # a bad schedule after a good one fails before any work (no plot); the defaults run as they are
    late = runner.invoke(app, ["sa-demo", "--schedule", "1/k", "--schedule", "const:0.1", "--steps", "200",
                               "--out", str(tmp_path / "c.png")])
    assert late.exit_code == 2 and "RMS error" not in late.output
    assert not (tmp_path / "c.png").exists()
    plain = runner.invoke(app, ["sa-demo", "--steps", "200", "--replicates", "20",
                                "--out", str(tmp_path / "d.png")])
    assert plain.exit_code == 0, plain.output
    assert "shown as the contrast" in plain.output and plain.output.count("RMS error after 200 steps") == 3


def test_cli_grid_rejects_bad_lists(tmp_path):
    result = CliRunner().invoke(app, ["grid", "--lrs", "1e-3,abc", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--lrs" in result.stderr


def test_cli_mean_of_a_binary_file_is_a_clear_error(tmp_path):
    # a binary file used to end in a UnicodeDecodeError traceback
    path = tmp_path / "weights.bin"
    path.write_bytes(b"1.5\n2.5\n" + bytes(range(128, 256)) * 4)
    result = CliRunner().invoke(app, ["mean", str(path)])
    assert result.exit_code == 2  # not 1, an exception escaping the command
    assert result.stderr.startswith("error: ") and str(path) in result.stderr
    assert "not a text file" in result.stderr


def test_cli_grid_checks_its_lists_before_any_work(tmp_path):
    result = CliRunner().invoke(app, ["grid", "--adamw-decays", "1e-3,-1", "--out", str(tmp_path / "g")])
    message = " ".join(result.stderr.replace("│", " ").split())  # typer draws usage errors in a wrapped box
    assert result.exit_code == 2 and "--adamw-decays" in message and "all > 0" in message
    assert not (tmp_path / "g").exists()


def test_batch_mean_holds_every_sample_and_incremental_mean_a_constant_state():
    from deepnotes.optim.claims.sa_cost import BatchMean, held_bytes
    from deepnotes.optim.stochastic import IncrementalMean

    xs = np.random.default_rng(0).normal(size=20_000)
    batch = [held_bytes(BatchMean, xs[:n]) for n in (2_000, 20_000)]
    inc = [held_bytes(IncrementalMean, xs[:n]) for n in (2_000, 20_000)]
    assert 9.0 < batch[1] / batch[0] < 11.0 and batch[1] >= 8 * 20_000  # at least a float64 per sample
    assert abs(inc[1] - inc[0]) < 64 and inc[1] < 10_000  # a few bytes of allocator noise, not 18k samples
    acc = BatchMean()
    for x in xs[:100]:
        acc.update(x)
    assert abs(acc.mean - xs[:100].mean()) < 1e-12


def test_time_per_estimate_times_each_method_at_each_size(monkeypatch):
    # The growth itself is the claim's measurement (reproduce), not a test's: timings do not belong in tests.
    # Here a fake clock that advances 1 us per reading checks the wiring: one median per size and method.
    from deepnotes.optim.claims import sa_cost

    ticks = iter(range(0, 10**12, 1000))
    monkeypatch.setattr(sa_cost.time, "perf_counter_ns", lambda: next(ticks))
    xs = np.random.default_rng(0).normal(size=1_000)
    t = sa_cost.time_per_estimate([10, 100, 1_000], xs, repeat=3)
    assert set(t) == {"non-incremental", "incremental"} and all(len(v) == 3 for v in t.values())
    assert all(v == pytest.approx(1e-6) for vs in t.values() for v in vs)


def test_batch_mean_cost_claim_is_registered_from_the_note():
    from deepnotes.core.claims import registered_claims

    c = next(c for c in registered_claims(["stochastic_approx"])
             if c.id == "stochastic_approx.batch_mean_cost")
    assert c.origin == "note" and c.source.note.startswith("非增量方法")
    assert {t.name: (t.side, t.bound) for t in c.tests} == {
        "memory_batch": (">", 0.9), "memory_incremental": ("<", 0.1), "time_slope": (">", 0.5)}
