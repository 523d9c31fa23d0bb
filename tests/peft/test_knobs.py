"""`peft train --r --alpha --dropout --target-modules --bottleneck --prefix-length`: flags and config-file
keys, documented defaults, and a knob the chosen method lacks refused naming it (before anything runs)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from deepnotes.peft.cli import app
from deepnotes.peft.config import KNOBS, TrainConfig
from deepnotes.peft.methods import METHODS

runner = CliRunner()
COMMON = ["--task", "table2text", "--steps", "1", "--batch-size", "2", "--n-train", "8", "--n-test", "2",
          "--device", "cpu"]


def test_every_knob_belongs_to_a_method_and_is_documented_in_help():
    assert {k for m in METHODS.values() for k in m.knobs} == set(KNOBS)
    res = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "240"})
    assert res.exit_code == 0
    for flag, default in [("--r", "default 8"), ("--alpha", "default 16"), ("--dropout", "default 0"),
                          ("--target-modules", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"),
                          ("--bottleneck", "model width / 16"), ("--prefix-length", "default 10")]:
        assert flag in res.output and default in res.output, flag


@pytest.mark.parametrize(("method", "args", "named"), [
    ("adapter", ["--r", "4"], "--r does not apply to --method adapter (its options: --bottleneck)"),
    ("lora", ["--prefix-length", "4"], "--prefix-length does not apply to --method lora"),
    ("prefix", ["--target-modules", "q_proj"], "--target-modules does not apply to --method prefix"),
    ("full", ["--dropout", "0.1"], "--dropout does not apply to --method full (its options: none)"),
])
def test_a_knob_the_method_lacks_is_refused_naming_it(tmp_path, method, args, named):
    res = runner.invoke(app, ["train", "--method", method, "--model", str(tmp_path / "none"), "--out",
                              str(tmp_path / "out"), *COMMON, *args], env={"COLUMNS": "200"})
    assert res.exit_code == 2 and named in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_knobs_as_config_keys_and_their_conflicts(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"method": "prompt", "model": "m", "task": "table2text",
                                    "out": str(tmp_path / "o"), "alpha": 4}))
    res = runner.invoke(app, ["train", "--config", str(path)])
    assert res.exit_code == 2 and "--alpha does not apply to --method prompt" in res.output
    cfg = TrainConfig(method="lora", model="m", task="table2text", out="o", r=4,
                      target_modules="q_proj, v_proj")
    assert cfg.method_options() == {"r": 4, "target_modules": ["q_proj", "v_proj"]}
    with pytest.raises(ValueError, match=r"--r 4 and method_config r=8 differ"):
        TrainConfig(method="lora", model="m", task="table2text", out="o", r=4, method_config={"r": 8})
    with pytest.raises(ValueError, match="dropout must be in"):
        TrainConfig(method="lora", model="m", task="table2text", out="o", dropout=1.5)


def test_knobs_reach_the_adapter_folder(pretrained, tmp_path):
    for method, args, key, value in [
            ("adapter", ["--bottleneck", "5"], "bottleneck", 5),
            ("lora", ["--r", "2", "--alpha", "4", "--dropout", "0.1", "--target-modules", "c_attn"],
             "target_modules", ["c_attn"]),
            ("prompt", ["--prefix-length", "3"], "num_virtual_tokens", 3)]:
        run = tmp_path / method
        res = runner.invoke(app, ["train", "--method", method, "--model", str(pretrained), "--out", str(run),
                                  *COMMON, *args])
        assert res.exit_code == 0, res.output
        stored = json.loads((run / "adapter" / "adapter_config.json").read_text())
        assert stored[key] == value
        if method == "lora":
            assert (stored["r"], stored["lora_alpha"], stored["lora_dropout"]) == (2, 4.0, 0.1)
        # resume keeps them: the stored knobs agree with the stored method config
        res = runner.invoke(app, ["train", "--out", str(run), "--resume", "--steps", "2"])
        assert res.exit_code == 0, res.output
