"""`peft train|pretrain --config FILE.yaml`, flags over the file, --resume from the stored config, the
deprecated --eval-every, and choices and ranges refused at parse time."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from deepnotes.peft.cli import app
from deepnotes.peft.methods import METHODS

runner = CliRunner()


def _yaml(path, **keys):
    path.write_text(yaml.safe_dump(keys))
    return path


def test_train_config_file_under_flags_and_resume_from_the_stored_config(pretrained, tmp_path):
    run = tmp_path / "run"
    cfg = _yaml(tmp_path / "lora.yaml", method="lora", model=str(pretrained), task="table2text", out=str(run),
                steps=3, batch_size=2, n_train=20, n_test=2, device="cpu", method_config={"r": 4})
    res = runner.invoke(app, ["train", "--config", str(cfg), "--steps", "1"])  # the flag wins over the file
    assert res.exit_code == 0, res.output
    stored = json.loads((run / "config.json").read_text())
    assert stored["steps"] == 1 and stored["batch_size"] == 2 and stored["save_every"] == 1
    assert stored["method_config"]["r"] == 4 and stored["lr"] == METHODS["lora"].lr  # resolved, as trained
    # --resume: the stored config is the base, the typed flags change it
    res = runner.invoke(app, ["train", "--out", str(run), "--resume", "--steps", "2"])
    assert res.exit_code == 0, res.output
    assert [m["step"] for m in json.loads((run / "metrics.json").read_text())] == [1, 2]
    assert json.loads((run / "config.json").read_text())["method_config"]["r"] == 4
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4


def test_config_file_errors_name_the_key(tmp_path):
    bad = _yaml(tmp_path / "bad.yaml", method="lora", stepz=3)
    res = runner.invoke(app, ["train", "--config", str(bad)])
    assert res.exit_code == 2 and "unknown key 'stepz'" in res.output and "bad.yaml" in res.output
    ia3 = _yaml(tmp_path / "m.yaml", method="ia3", model="m", task="table2text", out=str(tmp_path / "r"))
    res = runner.invoke(app, ["train", "--config", str(ia3)])
    assert res.exit_code == 2 and "unknown PEFT method 'ia3'; valid: lora, adapter" in res.output
    res = runner.invoke(app, ["train", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "missing method, model, task" in res.output
    res = runner.invoke(app, ["pretrain", "--config", str(_yaml(tmp_path / "p.yaml", arch="gpt2", vocab=5))])
    assert res.exit_code == 2 and "unknown key 'vocab'" in res.output


def test_eval_every_is_a_deprecated_alias_of_save_every(pretrained, tmp_path):
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--method", "prompt", "--model", str(pretrained),
                              "--task", "table2text", "--out", str(run), "--steps", "2", "--batch-size", "2",
                              "--n-train", "20", "--n-test", "2", "--device", "cpu", "--eval-every", "1"])
    assert res.exit_code == 0, res.output
    assert "--eval-every is deprecated" in res.output and "--save-every" in res.output
    assert json.loads((run / "config.json").read_text())["save_every"] == 1
    assert [m["step"] for m in json.loads((run / "metrics.json").read_text())] == [1, 2]


@pytest.mark.parametrize(("args", "flag", "named"), [
    (["train", "--method", "ia3", "--task", "table2text"], "--method", "'lora'"),
    (["train", "--method", "lora", "--task", "qa"], "--task", "'summarize'"),
    (["train", "--method", "lora", "--batch-size", "0"], "--batch-size", "greater than or equal to 1"),
    (["train", "--method", "lora", "--lr", "0"], "--lr", "greater than 0"),
    (["train", "--method", "lora", "--save-every", "0"], "--save-every", "greater than or equal to 1"),
    (["pretrain", "--arch", "gpt3"], "--arch", "'bart'"),
    (["pretrain", "--arch", "gpt2", "--size", "huge"], "--size", "'small'"),
    (["pretrain", "--arch", "gpt2", "--steps", "0"], "--steps", "greater than or equal to 1"),
])
def test_choices_and_ranges_are_refused_at_parse_time(tmp_path, args, flag, named):
    # --model names no folder and --out is never created: the refusal comes before anything runs
    extra = ["--model", str(tmp_path / "none")] if args[0] == "train" else []
    res = runner.invoke(app, [*args, *extra, "--out", str(tmp_path / "out")], env={"COLUMNS": "200"})
    assert res.exit_code == 2 and f"Invalid value for '{flag}'" in res.output, res.output
    assert named in res.output and not (tmp_path / "out").exists()


def test_help_lists_the_registered_methods():
    res = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and all(name in res.output for name in METHODS)
    assert "--save-every" in res.output and "--eval-every" not in res.output  # the alias is hidden


def test_pretrain_config_file_stored_beside_the_model_and_resumed(tmp_path):
    out = tmp_path / "gpt2"
    cfg = _yaml(tmp_path / "p.yaml", arch="gpt2", size="tiny", steps=2, batch_size=2, max_chars=20000,
                device="cpu", save_every=1)
    res = runner.invoke(app, ["pretrain", "--config", str(cfg), "--out", str(out), "--minutes", "0"])
    assert res.exit_code == 0, res.output
    assert "1 of 2 steps" in res.output  # out of time after the first step
    stored = json.loads((out / "pretrain_config.json").read_text())
    assert stored["steps"] == 2 and stored["max_chars"] == 20000 and "minutes" not in stored
    assert "n_layer" in json.loads((out / "config.json").read_text())  # config.json stays the model's
    res = runner.invoke(app, ["pretrain", "--out", str(out), "--resume"])  # everything else from the store
    assert res.exit_code == 0, res.output
    assert json.loads((out / "pretrain.json").read_text())["steps"] == 2
