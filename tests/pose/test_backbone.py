"""The backbone's stem stride and stages: flags, config keys, defaults by crop size, older checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core import load_checkpoint
from deepnotes.pose.config import PoseConfig, RunConfig, default_backbone
from deepnotes.pose.model import PoseModel
from deepnotes.pose.train import load_run

runner = CliRunner()
SMALL = ["--width", "4", "--depth", "10", "--batch-size", "12", "--device", "cpu", "--lr", "3e-3",
         "--heatmap-size", "8,6"]


def _train(data, out, *extra):
    return runner.invoke(app, ["pose", "train", "--head", "regression", "--train", str(data["train"]),
                               "--val", str(data["val"]), "--out", str(out), "--epochs", "1", *SMALL, *extra])


def test_defaults_by_crop_size():
    assert default_backbone((64, 48)) == (2, 4)  # small crops: a 2x stem keeps resolution, 4 stages
    assert default_backbone((127, 96)) == (2, 4)
    assert default_backbone((256, 192)) == (4, 4)  # the whole ResNet
    assert default_backbone((64, 48), pretrained=True) == (4, 4)  # loaded weights: the whole ResNet
    rc = RunConfig(train="t", val="v", out="o", input_size=(64, 48))
    assert (rc.model_config().stem_stride, rc.model_config().stages) == (2, 4)
    rc = RunConfig(train="t", val="v", out="o", input_size=(64, 48), stem_stride=4, stages=3)
    assert (rc.model_config().stem_stride, rc.model_config().stages) == (4, 3)


def test_feature_maps_follow_stem_and_stages():
    """At 64x48: the old 4x stem + 3 stages ends at 4x3 with 4w channels; a 2x stem + 4 stages ends at the
    same size with 8w channels and starts at 32x24."""
    for stem, stages, hw, channels in ((4, 3, (4, 3), 16), (2, 4, (4, 3), 32), (1, 4, (8, 6), 32),
                                       (4, 4, (2, 2), 32)):
        model = PoseModel(PoseConfig(head="regression", input_hw=(64, 48), depth=10, width=4,
                                     stem_stride=stem, stages=stages))
        assert model.feature_hw == hw and model.backbone.out_channels == channels, (stem, stages)
        with torch.no_grad():
            assert model.backbone.stem(torch.zeros(1, 3, 64, 48)).shape[2:] == (64 // stem, 48 // stem)


def test_flags_and_config_keys_are_stored(tiny_data, tmp_path):
    res = _train(tiny_data, tmp_path / "a", "--stem-stride", "1", "--stages", "3")
    assert res.exit_code == 0, res.output
    stored = json.loads((tmp_path / "a" / "config.json").read_text())
    assert stored["stem_stride"] == 1 and stored["stages"] == 3
    assert load_run(tmp_path / "a").config.stem_stride == 1
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stem_stride: 4\nstages: 4\n")
    res = _train(tiny_data, tmp_path / "b", "--config", str(cfg))
    assert res.exit_code == 0, res.output
    stored = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (stored["stem_stride"], stored["stages"]) == (4, 4)
    res = _train(tiny_data, tmp_path / "d")  # defaults for 64x48 crops, resolved in config.json
    stored = json.loads((tmp_path / "d" / "config.json").read_text())
    assert res.exit_code == 0 and (stored["stem_stride"], stored["stages"]) == (2, 4)


@pytest.mark.parametrize("flag, value", [("--stem-stride", "3"), ("--stages", "2"), ("--stages", "5")])
def test_bad_values_are_refused_while_parsing(tiny_data, tmp_path, flag, value):
    res = _train(tiny_data, tmp_path / "x", flag, value)
    assert res.exit_code == 2 and flag in res.output and "persons" not in res.output


def test_a_bad_config_key_value_is_an_error(tiny_data, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("stem_stride: 3\n")
    res = _train(tiny_data, tmp_path / "x", "--config", str(cfg))
    assert res.exit_code == 2 and "stem_stride" in res.output


def test_configs_without_the_keys_are_the_old_backbone():
    old = PoseConfig.from_dict({"head": "rle", "input_hw": [64, 48], "depth": 18, "width": 16})
    assert (old.stem_stride, old.stages, old.frame, old.norm) == (4, 3, "centers", "default")


def test_checkpoints_without_the_keys_load_as_before(tiny_data, tmp_path):
    """A run written before --stem-stride existed stores neither key: it is a 4x stem with 3 stages; eval
    reads it and --resume continues it."""
    res = _train(tiny_data, tmp_path / "old", "--stem-stride", "4", "--stages", "3")
    assert res.exit_code == 0, res.output
    ckpt = tmp_path / "old" / "checkpoint.safetensors"
    _, meta = load_checkpoint(ckpt)
    # the identity leaves out keys added since at the values older runs had: the meta is as it was then
    assert {"stem_stride", "frame", "norm"}.isdisjoint(meta["config"]) and meta["config"]["stages"] == 3
    stored = json.loads((tmp_path / "old" / "config.json").read_text())
    stored.pop("stem_stride")
    (tmp_path / "old" / "config.json").write_text(json.dumps(stored))
    model = load_run(tmp_path / "old")
    assert (model.config.stem_stride, model.config.stages) == (4, 3)
    res = runner.invoke(app, ["pose", "train", "--out", str(tmp_path / "old"), "--resume", "--epochs", "2"])
    assert res.exit_code == 0 and "resuming" in res.output, res.output


def test_pretrained_backbone_and_imagenet_normalisation(tiny_data, tmp_path):
    """--pretrained loads the backbone (nn.pretrained.load_resnet, torchvision layout here), picks the whole
    ResNet and stores ImageNet normalisation in the run, which eval then uses."""
    from deepnotes.nn.pretrained import save_torchvision
    from deepnotes.nn.resnet import ResNet
    from deepnotes.pose.evaluate import dataset_for

    torch.manual_seed(1)
    source = ResNet(10, 4, 3, stem_stride=4, num_stages=4)
    weights = save_torchvision(source, tmp_path / "resnet10.pth")
    out = tmp_path / "p"
    # lr ~ 0: the trained convs are still the file's
    res = _train(tiny_data, out, "--pretrained", str(weights), "--input-size", "128,96", "--lr", "1e-12")
    assert res.exit_code == 0, res.output
    assert "backbone from" in res.output and "torchvision layout" in res.output
    stored = json.loads((out / "config.json").read_text())
    assert stored["pretrained"] == str(weights) and (stored["stem_stride"], stored["stages"]) == (4, 4)
    model = load_run(out)
    assert model.config.norm == "imagenet"
    assert dataset_for(model, []).norm == "imagenet"
    for name, value in source.state_dict().items():
        if name.endswith(".weight") and value.dim() == 4:
            torch.testing.assert_close(model.backbone.state_dict()[name], value, atol=1e-6, rtol=0)
    # a file of another shape: an error naming the key, before training
    res = _train(tiny_data, tmp_path / "q", "--pretrained", str(weights), "--width", "8")
    assert res.exit_code == 2 and "stem.0.weight" in res.output
