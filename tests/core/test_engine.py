"""The training engine on a toy task: resume, refusals, skips, records, time limit, 2 processes = 1."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepnotes.core import load_checkpoint, save_checkpoint
from deepnotes.core.engine import Schedule
from tests.core import engine_toy
from tests.core.engine_toy import UNREADABLE, Toy, run


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoint.safetensors")[0]["model"]


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    _, ref = run(tmp_path / "ref", 4)
    assert [m["epoch"] for m in ref] == [1, 2, 3] and [m["step"] for m in ref] == [12, 24, 36]
    real, calls = Toy.loss, []

    def crash_on_15th(self, net, batch):
        calls.append(1)
        if len(calls) == 15:
            raise KeyboardInterrupt
        return real(self, net, batch)

    monkeypatch.setattr(Toy, "loss", crash_on_15th)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", 4)
    monkeypatch.setattr(Toy, "loss", real)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.safetensors")[1]["step"] == 12
    trainer, got = run(tmp_path / "cut", 4, resume=True)
    a, b = weights(tmp_path / "ref"), weights(tmp_path / "cut")
    # dropout masks included: every rank's RNG is stored with the checkpoint and restored
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m["step"] for m in got] == [12, 24, 36] and got[-1]["train_loss"] == ref[-1]["train_loss"]
    assert len(trainer.losses) == 36


def test_refusals_name_the_flag(tmp_path):
    run(tmp_path / "r", 4, epochs=1)
    with pytest.raises(FileExistsError, match="--resume"):
        run(tmp_path / "r", 4, epochs=2)
    with pytest.raises(ValueError, match=r"lr=0.05, not 0.1.*--lr"):
        run(tmp_path / "r", 4, epochs=2, lr=0.1, resume=True)
    with pytest.raises(ValueError, match=r"batch_size=4, not 2.*--batch-size"):
        run(tmp_path / "r", 2, epochs=2, resume=True)
    _, grown = run(tmp_path / "r", 4, epochs=2, resume=True)  # more epochs: allowed
    assert [m["epoch"] for m in grown] == [1, 2]
    old = tmp_path / "old"
    save_checkpoint(old / "checkpoint.safetensors", {"model": {}}, {"model": "toy", "epoch": 0})
    with pytest.raises(ValueError, match="older deepnotes"):
        run(old, 4, resume=True)


def test_unreadable_items_are_counted_named_and_empty_batches_skipped(tmp_path):
    trainer, records = run(tmp_path / "s", 1, epochs=1)
    (rec,) = records
    assert rec["train_skipped"] == len(UNREADABLE) and rec["train_steps"] == 48 - len(UNREADABLE)
    assert sorted(rec["train_skipped_items"]) == sorted(f"item{i}" for i in UNREADABLE)
    assert sum(math.isnan(x) for x in trainer.losses) == len(UNREADABLE) and len(trainer.losses) == 48
    assert rec["lr"] == pytest.approx(0.05 / (1 + 0.1 * 48))  # the schedule counted the skipped steps too


def test_step_periods_log_epoch_and_step(tmp_path):
    _, records = run(tmp_path / "p", 4, period=5)
    assert [m["step"] for m in records] == [5, 10, 15, 20, 25, 30, 35, 36]
    assert [m["epoch"] for m in records] == [1, 1, 2, 2, 3, 3, 3, 3]
    assert "val_mse" in records[-1] and all("val_mse" in m for m in records)  # eval_every=1 period
    assert Schedule(36, 5, 12, eval_every=2).periods == 8


def test_time_limit_stops_after_a_step_and_resume_finishes(tmp_path):
    _, part = run(tmp_path / "t", 4, time_limit_s=0.0)
    assert [m["step"] for m in part] == [1]
    _, full = run(tmp_path / "t", 4, resume=True)
    assert full[-1]["step"] == 36


def test_two_processes_with_unreadable_items_take_one_process_steps(tmp_path):
    """Batch 2 on each of 2 processes equals batch 4 on one; a process whose items are all unreadable takes
    part with a zero-weight placeholder (and a global batch with nothing readable is skipped by both)."""
    _, single = run(tmp_path / "one", 4, dropout=0.0)
    script = Path(engine_toy.__file__)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(script), str(tmp_path / "two"), "2", "0.0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(script.parents[2])}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    multi = json.loads((tmp_path / "two" / "metrics.json").read_text())
    for m1, m2 in zip(single, multi, strict=True):
        assert m1["train_loss"] == pytest.approx(m2["train_loss"], abs=1e-6)
        assert m1["train_skipped"] == m2["train_skipped"] and m1["val_mse"] == pytest.approx(m2["val_mse"])
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2


def test_a_task_whose_data_ends_early_is_an_error_not_an_endless_loop(tmp_path, monkeypatch):
    real = Toy.batches
    monkeypatch.setattr(Toy, "batches", lambda self, period, first: list(real(self, period, first))[:3])
    with pytest.raises(RuntimeError, match="gave 3 batches for a period of 12 steps"):
        run(tmp_path / "short", 4)


def test_a_task_must_say_what_its_data_and_loss_are():
    from deepnotes.core.engine import TrainTask

    class NoLoss(TrainTask):
        def batches(self, period, first_step):
            return []

    with pytest.raises(TypeError, match="loss"):
        NoLoss()
