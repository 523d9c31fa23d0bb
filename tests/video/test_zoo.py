"""`video import-mmaction`: checkpoints written here in mmaction2's key layout become run folders that compute
what the weights compute (a TSN whose backbone is transformers' ResNet-50 gives its per-frame features)."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.video.evaluation import load_run
from deepnotes.video.models import build_model
from deepnotes.video.models.tsm import temporal_shift
from deepnotes.video.zoo import import_mmaction

transformers = pytest.importorskip("transformers")


def randomise_bns(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + 0.5 * torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model.eval()


# mmaction2's names (mmcv ConvModule: .conv / .bn; TSM wraps block conv1's conv as .conv.net), written here
# from transformers' module names, not with the code under test
def hf_to_mmaction(key: str, tsm: bool) -> str:
    blk = r"resnet\.encoder\.stages\.(\d)\.layers\.(\d+)\."
    rules = [(r"resnet\.embedder\.embedder\.convolution\.(.+)", lambda m: f"backbone.conv1.conv.{m[1]}"),
             (r"resnet\.embedder\.embedder\.normalization\.(.+)", lambda m: f"backbone.conv1.bn.{m[1]}"),
             (blk + r"shortcut\.convolution\.(.+)",
              lambda m: f"backbone.layer{int(m[1]) + 1}.{m[2]}.downsample.conv.{m[3]}"),
             (blk + r"shortcut\.normalization\.(.+)",
              lambda m: f"backbone.layer{int(m[1]) + 1}.{m[2]}.downsample.bn.{m[3]}"),
             (blk + r"layer\.(\d)\.convolution\.(.+)",
              lambda m: f"backbone.layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}.conv."
                        f"{'net.' if tsm and m[3] == '0' else ''}{m[4]}"),
             (blk + r"layer\.(\d)\.normalization\.(.+)",
              lambda m: f"backbone.layer{int(m[1]) + 1}.{m[2]}.conv{int(m[3]) + 1}.bn.{m[4]}"),
             (r"classifier\.1\.(.+)", lambda m: f"cls_head.fc_cls.{m[1]}")]
    for pattern, make in rules:
        m = re.fullmatch(pattern, key)
        if m:
            return make(m)
    raise AssertionError(key)


@pytest.fixture(scope="module")
def hf_r50():
    cfg = transformers.ResNetConfig(layer_type="bottleneck", depths=[3, 4, 6, 3],
                                    hidden_sizes=[256, 512, 1024, 2048], num_labels=8)
    torch.manual_seed(0)
    return randomise_bns(transformers.ResNetForImageClassification(cfg))


def write_mmaction(path, hf, tsm: bool = False, extra: dict | None = None, drop: str | None = None):
    state = {hf_to_mmaction(k, tsm): v for k, v in hf.state_dict().items()}
    state.update(extra or {})
    state.pop(drop, None)
    torch.save({"meta": {"epoch": 100, "mmengine_version": "0.10.0"}, "state_dict": state}, path)
    return state


def test_tsn_from_transformers_resnet50_gives_its_frame_features_and_scores(hf_r50, motion_data, tmp_path):
    ckpt = tmp_path / "tsn_r50.pth"
    state = write_mmaction(ckpt, hf_r50)
    assert "backbone.layer1.0.conv1.conv.weight" in state and "cls_head.fc_cls.weight" in state
    runner = CliRunner()
    res = runner.invoke(app, ["video", "import-mmaction", str(ckpt), "--model", "tsn", "--out",
                              str(tmp_path / "run"), "--classes", str(motion_data["classes"]),
                              "--segments", "3", "--input-size", "64"])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "run" / "imported.json").read_text())
    assert info["keys"] == len(state) and info["depth"] == 50 and info["num_classes"] == 8
    model, meta = load_run(tmp_path / "run", torch.device("cpu"))
    assert meta["model_config"]["dropout"] == 0.4 and meta["data"]["segments"] == 3
    clip = torch.randn(2, 3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    frames = clip.transpose(1, 2).reshape(6, 3, 64, 64)
    with torch.no_grad():
        ours = model.features(clip).reshape(6, -1)
        ref = hf_r50.resnet(frames).pooler_output.flatten(1)
        # mmaction2's TSNHead: average the frames' pooled features, then the linear layer
        scores = hf_r50.classifier(ref.view(2, 3, -1).mean(1))
        assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max()
        assert (model(clip) - scores).abs().max() <= 1e-5 * scores.abs().max()
    video = next((motion_data["train"].parent / "videos" / "turn_cw").glob("*.mp4"))
    res = runner.invoke(app, ["video", "predict", str(tmp_path / "run"), str(video), "--device", "cpu"])
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == 5, res.output
    res = runner.invoke(app, ["video", "eval", str(tmp_path / "run"), "--list", str(motion_data["val"]),
                              "--workers", "0", "--device", "cpu"])
    assert res.exit_code == 0 and "top1" in res.output, res.output


def ours_to_mmaction(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our TSM's state dict (shift wrapped around each block's conv1: ``conv1.1``) in mmaction2's names."""
    out = {}
    for key, v in state.items():
        key = re.sub(r"^fc\.", "cls_head.fc_cls.", key)
        key = re.sub(r"^backbone\.stem\.0\.", "backbone.conv1.conv.", key)
        key = re.sub(r"^backbone\.stem\.1\.", "backbone.conv1.bn.", key)
        m = re.match(r"backbone\.stages\.(\d)\.(\d+)\.(\w+)\.(.+)", key)
        if m:
            s, b, unit, rest = int(m[1]) + 1, m[2], m[3], m[4]
            rest = rest.removeprefix("1.") if unit == "conv1" else rest  # past the shift
            part = {"0": "conv", "1": "bn"}[rest[0]] + rest[1:]
            net = "net." if unit == "conv1" and part.startswith("conv") else ""
            key = f"backbone.layer{s}.{b}.{unit}.{part.replace('conv.', 'conv.' + net, 1)}"
        out[key] = v
    return out


def test_tsm_checkpoint_in_mmaction_layout_gives_the_same_scores(tmp_path):
    torch.manual_seed(3)
    ours = randomise_bns(build_model("tsm", 6, num_segments=4, depth=18, width=64, stem_stride=4))
    state = ours_to_mmaction(ours.state_dict())
    assert {"backbone.layer1.0.conv1.conv.net.weight", "backbone.layer2.0.downsample.bn.weight"} <= set(state)
    torch.save({"state_dict": state}, tmp_path / "tsm.pth")
    info = import_mmaction(tmp_path / "tsm.pth", "tsm", tmp_path / "run", segments=4, input_size=32)
    assert info["keys"] == len(state) and info["depth"] == 18
    model, meta = load_run(tmp_path / "run", torch.device("cpu"))
    assert meta["model_config"]["dropout"] == 0.5
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(clip), ours(clip), atol=1e-5)


def test_our_shift_is_mmaction2s():
    """mmaction2's TemporalShift: fold = C // 8; channels [0, fold) read frame t+1, [fold, 2 fold) frame t-1,
    zeros past the clip's ends; the rest unshifted."""
    x = torch.randn(2 * 5, 16, 3, 3)
    v = x.view(2, 5, 16, 3, 3)
    want = v.clone()
    want[:, :, :2] = torch.cat([v[:, 1:, :2], torch.zeros_like(v[:, :1, :2])], 1)
    want[:, :, 2:4] = torch.cat([torch.zeros_like(v[:, :1, 2:4]), v[:, :-1, 2:4]], 1)
    assert torch.equal(temporal_shift(x, 5), want.view(10, 16, 3, 3))


def test_unknown_missing_and_mismatched_checkpoints_are_named(hf_r50, tmp_path):
    cases = [
        ({"extra": {"backbone.nonlocal.weight": torch.zeros(1)}}, "tsn", "'backbone.nonlocal.weight'"),
        ({"drop": "backbone.layer2.0.downsample.bn.running_var"}, "tsn",
         "'stages.1.0.downsample.1.running_var'"),
        ({"drop": "cls_head.fc_cls.weight"}, "tsn", "no cls_head.fc_cls.weight"),
        ({}, "tsm", "block backbone.layer1.0 has no temporal shift"),
        ({"tsm": True}, "tsn", "pass --model tsm"),
    ]
    for i, (kw, model, message) in enumerate(cases):
        write_mmaction(tmp_path / f"c{i}.pth", hf_r50, **kw)
        with pytest.raises(ValueError, match=re.escape(message)):
            import_mmaction(tmp_path / f"c{i}.pth", model, tmp_path / f"run{i}")
        assert not (tmp_path / f"run{i}" / "checkpoint.safetensors").exists()
    torch.save({"state_dict": {"conv1.weight": torch.zeros(2)}}, tmp_path / "tv.pth")
    res = CliRunner().invoke(app, ["video", "import-mmaction", str(tmp_path / "tv.pth"), "--model", "tsn",
                                   "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "not an mmaction2 recogniser checkpoint" in res.output
    (tmp_path / "two.txt").write_text("a\nb\n")
    write_mmaction(tmp_path / "ok.pth", hf_r50)
    with pytest.raises(ValueError, match="names 2 classes but the checkpoint's head has 8"):
        import_mmaction(tmp_path / "ok.pth", "tsn", tmp_path / "r2", classes=tmp_path / "two.txt")


def test_a_stored_data_preprocessor_sets_the_normalisation(hf_r50, tmp_path):
    mean = torch.tensor([120.0, 110.0, 100.0]).view(3, 1, 1)  # 0-255, as mmaction2 writes them
    std = torch.tensor([60.0, 50.0, 40.0]).view(3, 1, 1)
    write_mmaction(tmp_path / "n.pth", hf_r50,
                   extra={"data_preprocessor.mean": mean, "data_preprocessor.std": std})
    info = import_mmaction(tmp_path / "n.pth", "tsn", tmp_path / "run")
    assert info["mean"] == pytest.approx([120 / 255, 110 / 255, 100 / 255])
    _, meta = load_run(tmp_path / "run", torch.device("cpu"))
    assert meta["data"]["std"] == pytest.approx([60 / 255, 50 / 255, 40 / 255])
