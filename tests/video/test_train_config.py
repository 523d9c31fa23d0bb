"""`video train`'s config: --config files under flags, --resume from the stored config, flags checked at
parse time, unknown keys refused, and checkpoints written before the training engine."""

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core import load_checkpoint, save_checkpoint
from deepnotes.core.config import ConfigError
from deepnotes.video import TrainConfig, evaluate, predict, train
from deepnotes.video import training as training_mod

runner = CliRunner()
WIDE = {"COLUMNS": "300"}  # rich wraps usage errors at the terminal width


def _yaml(path, **keys):
    path.write_text(yaml.safe_dump(keys))
    return path


def test_a_config_file_trains_and_typed_flags_override_it(motion_data, tiny_train_kwargs, tmp_path):
    run = tmp_path / "run"
    cfg = _yaml(tmp_path / "tsn.yaml", model="tsn", train=str(motion_data["train"]), out=str(run), epochs=3,
                **{**tiny_train_kwargs, "input_size": "16,16"})  # the H,W syntax in a file
    res = runner.invoke(app, ["video", "train", "--config", str(cfg), "--epochs", "1", "--lr", "2e-3",
                              "--crop-scales", "1,0.9"])
    assert res.exit_code == 0, res.output
    assert "epoch 1: train loss" in res.output and "epoch 2" not in res.output
    stored = json.loads((run / "config.json").read_text())
    assert stored["epochs"] == 1 and stored["lr"] == 2e-3  # typed flags win
    assert stored["crop_scales"] == [1, 0.9]
    assert stored["model"] == "tsn" and stored["depth"] == 10 and stored["input_size"] == 16  # the file's
    assert stored["batch_size"] == 4 and stored["world_size"] == 1 and len(stored["classes"]) == 8


def test_resume_without_other_flags_continues_from_the_stored_config(motion_data, tiny_train_kwargs, tmp_path,
                                                                     monkeypatch):
    run = tmp_path / "run"
    cfg = _yaml(tmp_path / "c.yaml", model="tsn", train=str(motion_data["train"]), out=str(run), epochs=2,
                **tiny_train_kwargs)
    real = training_mod.set_epoch

    def crash_in_second_epoch(loader, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        real(loader, epoch)

    monkeypatch.setattr(training_mod, "set_epoch", crash_in_second_epoch)
    res = runner.invoke(app, ["video", "train", "--config", str(cfg)])
    assert res.exit_code == 130  # interrupted in epoch 2, after epoch 1's checkpoint
    assert [m["epoch"] for m in json.loads((run / "metrics.json").read_text())] == [1]
    monkeypatch.setattr(training_mod, "set_epoch", real)
    res = runner.invoke(app, ["video", "train", "--out", str(run), "--resume"])
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output and "epoch 2: train loss" in res.output
    assert [m["epoch"] for m in json.loads((run / "metrics.json").read_text())] == [1, 2]
    # the same run uninterrupted gives the same weights
    ref = train(TrainConfig(model="tsn", train=str(motion_data["train"]), out=str(tmp_path / "ref"), epochs=2,
                            **tiny_train_kwargs))
    resumed = json.loads((run / "metrics.json").read_text())
    assert ref[-1]["train_loss"] == pytest.approx(resumed[-1]["train_loss"])
    # a resume may change what does not move the schedule (--epochs), not what does
    res = runner.invoke(app, ["video", "train", "--out", str(run), "--resume", "--lr", "0.1"])
    assert res.exit_code == 2 and "--lr" in res.output


def test_crop_scales_from_a_file_and_for_runs_stored_before_the_field(tmp_path):
    from deepnotes.core.config import build_config, stored_config

    base = {"model": "tsm", "train": "t.txt", "out": str(tmp_path)}
    assert TrainConfig(**base).crop_scales == (1.0, 0.875, 0.75)  # TSN's motion-input scales
    assert build_config(TrainConfig, ("f.yaml", {**base, "crop_scales": [1, 0.8]})).crop_scales == (1.0, 0.8)
    with pytest.raises(ValueError, match="crop-scales must be fractions"):
        TrainConfig(**base, crop_scales=(1.0, 0.0))
    (tmp_path / "config.json").write_text(json.dumps(base))  # a run written before crop_scales existed
    assert stored_config(tmp_path, TrainConfig)["crop_scales"] == (1.0, 0.875, 0.75, 0.66)  # what it used
    (tmp_path / "config.json").write_text(json.dumps({**base, "crop_scales": [1, 0.5]}))
    assert stored_config(tmp_path, TrainConfig)["crop_scales"] == [1, 0.5]


def test_an_unknown_key_is_an_error_naming_it(motion_data, tmp_path):
    cfg = _yaml(tmp_path / "bad.yaml", model="tsn", train=str(motion_data["train"]), out=str(tmp_path / "r"),
                batchsize=4)
    res = runner.invoke(app, ["video", "train", "--config", str(cfg)], env=WIDE)
    assert res.exit_code == 2 and "unknown key 'batchsize'" in res.output and "batch_size" in res.output
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="unknown key 'segment'"):
        TrainConfig.from_dict({"model": "tsn", "train": "t.txt", "out": "o", "segment": 4})
    # a run's config.json also stores its bookkeeping (the process count): read with from_stored
    stored = {"model": "tsn", "train": "t.txt", "out": "o", "world_size": 2, "classes": ["a", "b"]}
    assert TrainConfig.from_stored(stored).classes == ["a", "b"]  # the names the run trained on
    with pytest.raises(ConfigError, match="unknown key 'world_size'"):
        TrainConfig.from_dict(stored)


def test_batch_size_0_is_refused_at_parse_time_and_by_the_library(motion_data, tmp_path):
    res = runner.invoke(app, ["video", "train", "--model", "tsn", "--train", str(motion_data["train"]),
                              "--out", str(tmp_path / "r"), "--batch-size", "0"], env=WIDE)
    assert res.exit_code == 2 and "'--batch-size': Input should be greater than or equal to 1" in res.output
    kw = {"model": "tsn", "train": str(motion_data["train"]), "out": str(tmp_path / "r")}
    with pytest.raises(ValueError, match="--batch-size must be at least 1, got 0"):
        TrainConfig(**kw, batch_size=0)
    cfg = TrainConfig(**kw)
    cfg.batch_size = 0  # a config changed after it was made is checked again (was a ZeroDivisionError)
    with pytest.raises(ValueError, match="--batch-size must be at least 1, got 0"):
        train(cfg)


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--model", "tsn3", "'tsn3' is not one of"),
    ("--crop", "random", "'random' is not one of 'multiscale', 'resized', 'center'"),
    ("--sampling", "sparse", "'sparse' is not one of 'segments', 'dense'"),
    ("--list-format", "csv", "'csv' is not one of 'auto', 'video', 'rawframes'"),
    ("--stream", "two_stream", "'two_stream' is not one of"),  # a stream is a single-stream recogniser
    ("--flow-method", "horn", "'horn' is not one of 'farneback', 'dis', 'tvl1'"),
    ("--fusion", "weighted:1", "give two non-negative weights"),
    ("--fusion", "max", "unknown fusion 'max'"),
    ("--lr", "0", "must be positive"),
    ("--dropout", "1", "must be in [0, 1)"),
    ("--epochs", "0", "greater than or equal to 1"),
    ("--segments", "0", "greater than or equal to 1"),
    ("--workers", "-1", "greater than or equal to 0"),
    ("--input-size", "16,12", "H must equal W"),
    ("--input-size", "16,x", "expected H,W"),
    ("--crop-scales", "1,abc", "expected comma-separated numbers"),
    ("--crop-scales", "1,1.5", "must be in (0, 1]"),
])
def test_train_flags_are_checked_at_parse_time(flag, value, message, tmp_path):
    # the list does not exist: only a parse-time check can answer before the library would say so
    res = runner.invoke(app, ["video", "train", "--model", "tsn", "--train", str(tmp_path / "missing.txt"),
                              "--out", str(tmp_path / "r"), flag, value], env=WIDE)
    assert res.exit_code == 2 and message in res.output and f"'{flag}'" in res.output, res.output
    assert "missing.txt" not in res.output and not (tmp_path / "r").exists()


def test_input_size_takes_h_w_and_help_lists_every_model_and_groups_two_stream():
    assert TrainConfig(model="tsn", train="t", out="o", input_size="112,112").input_size == 112
    assert TrainConfig(model="tsn", train="t", out="o", input_size=[64, 64]).input_size == 64
    with pytest.raises(ValueError, match="--input-size 64,48: .*H must equal W"):
        TrainConfig(model="tsn", train="t", out="o", input_size="64,48")
    res = runner.invoke(app, ["video", "train", "--help"], env=WIDE)
    assert res.exit_code == 0 and "i3d_full" in res.output and "two_stream" in res.output
    panel = res.output[res.output.index("Two-stream (--model two_stream)"):]
    for flag in ("--flow-train", "--flow-val", "--new-length", "--fusion", "--stream", "--flow-method"):
        assert flag in panel and flag not in res.output[:res.output.index("Two-stream (--model")]


def test_synth_size_takes_h_w(tmp_path):
    res = runner.invoke(app, ["video", "synth", "scene", str(tmp_path / "s"), "--n-per-class", "1",
                              "--val-per-class", "1", "--frames", "4", "--size", "16,16"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["video", "synth", "scene", str(tmp_path / "t"), "--size", "16,24"], env=WIDE)
    assert res.exit_code == 2 and "'--size'" in res.output and "H must equal W" in res.output
    res = runner.invoke(app, ["video", "synth", "noise", str(tmp_path / "u")], env=WIDE)
    assert res.exit_code == 2 and "'noise' is not one of 'motion', 'scene'" in res.output


def test_checkpoints_from_before_the_engine_are_read_by_eval_and_refused_for_resume(
        motion_data, tiny_train_kwargs, tmp_path):
    new = tmp_path / "new"
    kw = {"model": "tsm", "train": str(motion_data["train"]), "val": str(motion_data["val"]), "epochs": 1,
          **tiny_train_kwargs}
    train(TrainConfig(out=str(new), **kw))
    old = tmp_path / "old"
    shutil.copytree(new, old)
    state, meta = load_checkpoint(new / "checkpoint.safetensors")
    # the layout the trainer wrote before the engine: a 0-based epoch, no engine version, step or RNG states
    old_state = {**{k: state[k] for k in ("model", "optimizer", "scheduler")}, "epoch": 0}
    old_meta = {**{k: v for k, v in meta.items() if k not in ("engine", "step")}, "epoch": 0}
    save_checkpoint(old / "checkpoint.safetensors", old_state, old_meta)
    res = evaluate(old, motion_data["val"], workers=0, device="cpu")
    assert res["n"] == 8 and res["top1"] == evaluate(new, motion_data["val"], workers=0, device="cpu")["top1"]
    video = next((motion_data["train"].parent / "videos" / "move_left").glob("*.mp4"))
    assert predict(old, video, device="cpu") == predict(new, video, device="cpu")
    with pytest.raises(ValueError, match="before the training engine.*cannot be resumed"):
        train(TrainConfig(out=str(old), **{**kw, "epochs": 2}, resume=True))
