import json

import pytest
import torch
from safetensors.torch import save_file

from deepnotes.core import RunDir, atomic_write_json, load_checkpoint, resolve_inside, save_checkpoint
from deepnotes.core.checkpoint import read_meta


def test_nested_state_round_trip(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "shape": (2, 3),
             "none": None}
    path = save_checkpoint(tmp_path / "ck.safetensors", state, {"model": "mlp"})
    loaded, meta = load_checkpoint(path)
    assert meta == {"model": "mlp"}
    assert loaded["epoch"] == 3 and loaded["shape"] == (2, 3) and loaded["none"] is None
    for k, v in model.state_dict().items():
        assert torch.equal(loaded["model"][k], v)
    # optimizer state is keyed by int parameter index: keys must come back as ints so load_state_dict works
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt2.load_state_dict(loaded["optimizer"])
    assert set(opt2.state_dict()["state"]) == {0, 1, 2, 3}
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_keys_that_flatten_alike_keep_both_tensors(tmp_path):
    # "a.b" and {"a": {"b"}} (and int 0 / str "0") join to the same dotted name: neither may overwrite
    # the other
    state = {"a.b": torch.ones(1), "a": {"b": torch.zeros(1)},
             "s": {0: torch.full((1,), 2.0), "0": torch.full((1,), 3.0)}}
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", state))
    assert loaded["a.b"].item() == 1.0 and loaded["a"]["b"].item() == 0.0
    assert loaded["s"][0].item() == 2.0 and loaded["s"]["0"].item() == 3.0


def test_tied_weights_are_saved(tmp_path):
    emb = torch.nn.Embedding(10, 4)
    head = torch.nn.Linear(4, 10, bias=False)
    head.weight = emb.weight  # shared storage: safetensors alone would refuse this
    save_checkpoint(tmp_path / "t.safetensors", {"emb": emb.weight, "head": head.weight})
    loaded, _ = load_checkpoint(tmp_path / "t.safetensors")
    assert torch.equal(loaded["emb"], loaded["head"])


def test_atomic_write_leaves_no_temp_and_keeps_old_on_failure(tmp_path):
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, {"x": torch.ones(2)})
    with pytest.raises(TypeError):
        save_checkpoint(path, {"x": object()})
    loaded, _ = load_checkpoint(path)
    assert torch.equal(loaded["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]


def test_foreign_and_corrupt_files_are_clear_errors(tmp_path):
    save_file({"a": torch.zeros(1)}, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="not a deepnotes checkpoint"):
        load_checkpoint(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        read_meta(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_rundir_metrics_replace_epoch_on_resume_and_check_meta(tmp_path):
    run = RunDir(tmp_path / "run")
    run.log_epoch({"epoch": 0, "loss": 2.0})
    run.log_epoch({"epoch": 1, "loss": 1.5})
    run.log_epoch({"epoch": 1, "loss": 1.4})  # epoch 1 redone after a resume
    again = RunDir(tmp_path / "run")
    assert [m["loss"] for m in again.metrics] == [2.0, 1.4]
    run.save({"w": torch.ones(1)}, {"model": "tsm"})
    with pytest.raises(ValueError, match="model='tsm'"):
        run.load(expect={"model": "i3d"})
    state, meta = run.load(expect={"model": "tsm"})
    assert meta["model"] == "tsm"


def test_resolve_inside_refuses_escape(tmp_path):
    assert resolve_inside(tmp_path, "a/b.jpg") == (tmp_path / "a/b.jpg").resolve()
    with pytest.raises(ValueError, match="outside"):
        resolve_inside(tmp_path, "../etc/passwd")
    with pytest.raises(ValueError, match="outside"):
        resolve_inside(tmp_path, "/etc/passwd")


def test_atomic_write_json(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"a": torch.tensor(2.5)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 2.5}


def test_atomic_write_gives_the_mode_of_a_plain_open(tmp_path):
    import os

    atomic_write_json(tmp_path / "a.json", {"a": 1})
    (tmp_path / "b.json").write_text("{}")
    assert os.stat(tmp_path / "a.json").st_mode == os.stat(tmp_path / "b.json").st_mode
