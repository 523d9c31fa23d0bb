"""A pre-training or fine-tuning run killed after a checkpoint and resumed ends where an uninterrupted one
does."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from deepnotes.core import load_checkpoint
from deepnotes.peft.pretrain import pretrain
from deepnotes.peft.train import train

PRETRAIN = {"steps": 4, "batch_size": 2, "device": "cpu", "max_chars": 20000, "save_every": 2}


def crash_on_call(monkeypatch, n: int) -> None:
    """Make the n-th gradient clipping raise, i.e. kill the run inside step n (1-based)."""
    real, calls = torch.nn.utils.clip_grad_norm_, []

    def clip(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)


def test_pretrain_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    ref = pretrain("gpt2", "tiny", tmp_path / "ref", **PRETRAIN)
    with monkeypatch.context() as m:
        crash_on_call(m, 4)  # steps 1-3 ran, the checkpoint holds step 2
        with pytest.raises(KeyboardInterrupt):
            pretrain("gpt2", "tiny", tmp_path / "cut", **PRETRAIN)
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    _, meta = load_checkpoint(tmp_path / "cut" / "checkpoint.safetensors")
    assert meta["step"] == 2
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain("gpt2", "tiny", tmp_path / "cut", **PRETRAIN)
    with pytest.raises(ValueError, match="--lr"):
        pretrain("gpt2", "tiny", tmp_path / "cut", **PRETRAIN, lr=5e-4, resume=True)
    got = pretrain("gpt2", "tiny", tmp_path / "cut", **PRETRAIN, resume=True)
    assert got["steps"] == ref["steps"] == 4 and got["loss_curve"] == ref["loss_curve"]
    a = load_file(tmp_path / "ref" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the GPT-2 has dropout 0.1: without the stored RNG the resumed steps would draw other masks
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["resid_pdrop"] > 0


def test_pretrain_minutes_then_resume_reaches_the_target(tmp_path):
    part = pretrain("gpt2", "tiny", tmp_path / "m", **{**PRETRAIN, "steps": 3}, minutes=0.0)
    assert part["steps"] == 1 and part["target_steps"] == 3  # out of time after the first step
    full = pretrain("gpt2", "tiny", tmp_path / "m", **{**PRETRAIN, "steps": 3}, resume=True)
    assert full["steps"] == 3 and full["loss_curve"][:1] == part["loss_curve"]


@pytest.mark.parametrize("method", ["lora", "prefix"])
def test_train_resume_equals_an_uninterrupted_run(pretrained, tmp_path, monkeypatch, method):
    kwargs = {"steps": 4, "batch_size": 2, "n_train": 20, "n_test": 2, "eval_every": 2, "device": "cpu"}
    ref = train(method, pretrained, "table2text", tmp_path / "ref", **kwargs)
    with monkeypatch.context() as m:
        crash_on_call(m, 4)
        with pytest.raises(KeyboardInterrupt):
            train(method, pretrained, "table2text", tmp_path / "cut", **kwargs)
    if method == "lora":  # other batches or another schedule would not continue this run: named, refused
        with pytest.raises(ValueError, match="batch_size=2, not 3; .* --batch-size"):
            train(method, pretrained, "table2text", tmp_path / "cut", **{**kwargs, "batch_size": 3},
                  resume=True)
        with pytest.raises(ValueError, match="lr=0.005, not 0.001; .* --lr"):
            train(method, pretrained, "table2text", tmp_path / "cut", **{**kwargs, "lr": 1e-3}, resume=True)
    got = train(method, pretrained, "table2text", tmp_path / "cut", **kwargs, resume=True)
    a, _ = load_checkpoint(tmp_path / "ref" / "checkpoint.safetensors")
    b, _ = load_checkpoint(tmp_path / "cut" / "checkpoint.safetensors")
    assert a["model"].keys() == b["model"].keys()  # the trained tensors only (see test_pipeline)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert got["test_loss"] == ref["test_loss"]
    logged = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert [m["step"] for m in logged] == [2, 4]
    untimed = lambda records: [{k: v for k, v in m.items() if k != "seconds"} for m in records]  # noqa: E731
    assert untimed(logged) == untimed(json.loads((tmp_path / "ref" / "metrics.json").read_text()))


def test_report_reuses_finished_fine_tunings_and_resumes_killed_ones(pretrained, tmp_path, monkeypatch):
    from deepnotes.core import ClaimContext
    from deepnotes.peft import claims

    monkeypatch.setattr(claims, "_base", lambda ctx: pretrained)
    ctx = ClaimContext(quick=True, seed=0, device=torch.device("cpu"), out_dir=tmp_path, claim_id="peft.test")
    first = claims._run(ctx, "prompt", "p")
    calls = []
    monkeypatch.setattr("deepnotes.peft.train.train",
                        lambda *a, **kw: calls.append(kw) or {"resumed": kw["resume"]})
    assert claims._run(ctx, "prompt", "p") == first and not calls  # finished: read back, not retrained
    (claims._run_dir(ctx, "p") / "results.json").unlink()  # as if killed after its last checkpoint
    assert claims._run(ctx, "prompt", "p") == {"resumed": True}
    # other sizes: trained afresh, never resumed from this one
    assert claims._run(ctx, "prompt", "p", seed=1) == {"resumed": False}


def test_each_process_restores_its_own_dropout_stream():
    from deepnotes.core import torch_rng_state
    from deepnotes.core.distributed import DistInfo
    from deepnotes.peft.train import process_rng

    torch.manual_seed(1)
    s1 = torch_rng_state()
    torch.manual_seed(2)
    s2 = torch_rng_state()
    saved = {"rng": s1, "rng_ranks": {"0": s1, "1": s2}}
    draws = []
    for rank in (0, 1):
        process_rng(0, DistInfo(rank, 2), saved)
        draws.append(torch.rand(3))
    torch.manual_seed(2)
    assert torch.equal(draws[1], torch.rand(3)) and not torch.equal(draws[0], draws[1])
    torch.manual_seed(5)
    # an older checkpoint holds rank 0's stream only: rank 1 reseeds
    process_rng(5, DistInfo(1, 2), {"rng": s1})
    fresh = torch.rand(3)
    torch.manual_seed(5 + 1_000_003)
    assert torch.equal(fresh, torch.rand(3))


def test_runs_from_before_the_engine_are_read_but_not_resumed(pretrained, tmp_path):
    """A pre-engine run folder (weights under ``trained``, no ``engine`` in the meta): ``load_run`` (generate)
    still reads it, and ``--resume`` refuses it with a message instead of mixing two formats."""
    from deepnotes.core import save_checkpoint
    from deepnotes.peft.models import load_base
    from deepnotes.peft.train import load_run

    base, _ = load_base(pretrained)
    trained = {n: p.detach() + 0.5 for n, p in base.named_parameters()}
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "full", "model": str(pretrained),
                                                 "task": "table2text", "steps": 2}))
    save_checkpoint(run / "checkpoint.safetensors", {"trained": trained},
                    {"method": "full", "task": "table2text", "step": 2})
    model, _, asked = load_run(run, "cpu")
    assert asked["method"] == "full"
    assert all(torch.equal(p, trained[n]) for n, p in model.named_parameters())
    with pytest.raises(ValueError, match="before the training engine.*cannot be resumed"):
        train("full", pretrained, "table2text", run, steps=2, batch_size=2, n_train=4, n_test=2, device="cpu",
              resume=True)
    # and a run of today: the engine's checkpoint keeps full fine-tuning's weights under "model"
    train("full", pretrained, "table2text", tmp_path / "new", steps=1, batch_size=2, n_train=4, n_test=2,
          device="cpu")
    state, _ = load_checkpoint(tmp_path / "new" / "checkpoint.safetensors")
    model, _, _ = load_run(tmp_path / "new", "cpu")
    assert all(torch.equal(p, state["model"][n]) for n, p in model.named_parameters())
