"""Pretrained ResNet weights: our backbone loaded from transformers' ResNet (the independent reference, random
weights, no download) and from the same weights renamed to torchvision's layout computes what it computes."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import save_file

from deepnotes.nn.pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_resnet,
    state_dict_to_torchvision,
    torchvision_to_ours,
)
from deepnotes.nn.resnet import ResNet

transformers = pytest.importorskip("transformers")

SPECS = {18: ("basic", [2, 2, 2, 2], [64, 128, 256, 512]),
         50: ("bottleneck", [3, 4, 6, 3], [256, 512, 1024, 2048])}


def hf_resnet(depth: int, seed: int = 0) -> transformers.ResNetForImageClassification:
    """A random transformers ResNet-``depth`` classifier (10 classes) whose BatchNorms carry random affine
    parameters and running statistics, so a BN loaded in the wrong place shows."""
    kind, depths, sizes = SPECS[depth]
    cfg = transformers.ResNetConfig(layer_type=kind, depths=depths, hidden_sizes=sizes, embedding_size=64,
                                    num_labels=10)
    torch.manual_seed(seed)
    model = transformers.ResNetForImageClassification(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.num_batches_tracked.fill_(7)
    return model


# transformers -> torchvision names, written here from the two libraries' module names (not with the code
# under test): stage i block j conv k = layer{i+1}.j.conv{k+1} / bn{k+1}; shortcut = downsample.0 / .1
BLOCK = r"resnet\.encoder\.stages\.(\d)\.layers\.(\d+)\."
TV_RULES = [
    (r"resnet\.embedder\.embedder\.convolution\.(.+)", r"conv1.\1"),
    (r"resnet\.embedder\.embedder\.normalization\.(.+)", r"bn1.\1"),
    (BLOCK + r"shortcut\.convolution\.(.+)", "layer{a}.{1}.downsample.0.{2}"),
    (BLOCK + r"shortcut\.normalization\.(.+)", "layer{a}.{1}.downsample.1.{2}"),
    (BLOCK + r"layer\.(\d)\.convolution\.(.+)", "layer{a}.{1}.conv{b}.{3}"),
    (BLOCK + r"layer\.(\d)\.normalization\.(.+)", "layer{a}.{1}.bn{b}.{3}"),
    (r"classifier\.1\.(.+)", r"fc.\1"),
]


def to_torchvision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, repl in TV_RULES:
            m = re.fullmatch(pattern, key)
            if m:
                g = m.groups()
                name = m.expand(repl) if "{" not in repl else repl.format(
                    *g, a=int(g[0]) + 1, b=int(g[2]) + 1 if len(g) > 3 else 0)
                out[name] = value.clone()
                break
        else:
            raise AssertionError(f"test rename misses {key}")
    return out


def reference(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
    return out.hidden_states[-1], out.logits


def ours_from(source, depth: int, **kw) -> tuple[ResNet, object]:
    net = ResNet(depth, 64, stem_stride=4, **kw).eval()
    return net, load_resnet(net, source)


def check_equal(net: ResNet, report, hf, x: torch.Tensor) -> None:
    feats, logits = reference(hf, x)
    with torch.no_grad():
        ours = net(x)
        our_logits = torch.nn.functional.linear(ours.mean((2, 3)), report.head["weight"], report.head["bias"])
    assert ours.shape == feats.shape
    assert (ours - feats).abs().max() <= 1e-5 * max(1.0, feats.abs().max().item())
    assert (our_logits - logits).abs().max() <= 1e-5 * max(1.0, logits.abs().max().item())


@pytest.mark.parametrize("depth", [18, 50])
def test_transformers_layout_and_torchvision_renaming_give_transformers_features_and_logits(depth, tmp_path):
    hf = hf_resnet(depth)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    hf.save_pretrained(tmp_path / "hf")  # a save_pretrained folder (model.safetensors + config.json)
    net, report = ours_from(tmp_path / "hf", depth)
    assert report.layout == "transformers" and not report.initialised
    assert set(report.unused) == {"classifier.1.weight", "classifier.1.bias"}  # the head is not the backbone
    check_equal(net, report, hf, x)
    tv = to_torchvision(hf.state_dict())
    torch.save(tv, tmp_path / f"resnet{depth}.pth")
    net, report = ours_from(tmp_path / f"resnet{depth}.pth", depth)
    assert report.layout == "torchvision" and set(report.unused) == {"fc.weight", "fc.bias"}
    check_equal(net, report, hf, x)
    # and our names for torchvision's are the inverse of each other
    assert set(state_dict_to_torchvision(net)) | {"fc.weight", "fc.bias"} == set(tv)
    assert set(torchvision_to_ours(tv)) - {"fc.weight", "fc.bias"} == set(net.state_dict())


def test_safetensors_file_of_a_bare_resnet_model_and_a_wrapped_checkpoint(tmp_path):
    hf = hf_resnet(18, seed=3)
    bare = {k.removeprefix("resnet."): v for k, v in hf.state_dict().items() if k.startswith("resnet.")}
    save_file({k: v.contiguous() for k, v in bare.items()}, tmp_path / "r18.safetensors")
    net, report = ours_from(tmp_path / "r18.safetensors", 18)
    assert report.layout == "transformers" and not report.unused and report.head == {}
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(net(x), hf.resnet(x).last_hidden_state, atol=1e-5)
    # a training checkpoint {"state_dict": {"module.conv1.weight": ...}} (DDP's prefix) reads alike
    wrapped = {"state_dict": {f"module.{k}": v for k, v in to_torchvision(hf.state_dict()).items()},
               "epoch": 3}
    torch.save(wrapped, tmp_path / "ckpt.pth")
    net2, report = ours_from(tmp_path / "ckpt.pth", 18)
    assert report.layout == "torchvision"
    with torch.no_grad():
        assert torch.equal(net2(x), net(x))


def test_truncated_backbone_and_flow_stem_are_reported(tmp_path):
    hf = hf_resnet(18)
    torch.save(to_torchvision(hf.state_dict()), tmp_path / "r18.pth")
    net, report = ours_from(tmp_path / "r18.pth", 18, num_stages=3)
    assert any(k.startswith("layer4.") for k in report.unused) and not report.initialised
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(net(x), hf.resnet(x, output_hidden_states=True).hidden_states[3], atol=1e-5)
    flow = ResNet(18, 64, in_channels=10)
    before = flow.stem[0].weight.clone()
    report = load_resnet(flow, tmp_path / "r18.pth")
    assert report.initialised == ["stem.0.weight"] and torch.equal(flow.stem[0].weight, before)
    assert "stem.1.weight" in report.loaded


def test_mismatches_name_the_first_key_and_load_nothing(tmp_path):
    torch.save(to_torchvision(hf_resnet(50).state_dict()), tmp_path / "r50.pth")
    net = ResNet(18, 64)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    first = r"'stages\.0\.0\.conv1\.0\.weight'.*ResNet-50 of width 64.*ResNet-18"
    with pytest.raises(ValueError, match=first):
        load_resnet(net, tmp_path / "r50.pth")  # a bottleneck conv1 is 1x1: the shapes differ first
    narrow = ResNet(50, 16)
    with pytest.raises(ValueError, match=r"'conv1\.weight' \(our 'stem\.0\.weight'\) is \(64, 3, 7, 7\)"):
        load_resnet(narrow, tmp_path / "r50.pth")
    with pytest.raises(ValueError, match="stem.0.weight"):
        load_resnet(ResNet(50, 64, stem_stride=1), tmp_path / "r50.pth")  # a 3x3 stem
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no ResNet weights found"):
        load_resnet(net, tmp_path / "other.pth")
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"no weight for 'stem\.1\.weight' \(torchvision: bn1\.weight\)"):
        load_resnet(net, tmp_path / "partial.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="weights_only"):
        load_resnet(net, tmp_path / "junk.pth")


def test_our_parameter_names_are_kept_so_old_runs_load():
    names = set(ResNet(18, 8).state_dict())
    assert {"stem.0.weight", "stem.1.running_var", "stages.0.0.conv1.0.weight", "stages.0.0.conv2.1.bias",
            "stages.1.0.downsample.0.weight", "stages.3.1.conv2.1.num_batches_tracked"} <= names
    assert not any(k.startswith(("conv1", "bn1", "layer")) for k in names)


def test_imagenet_statistics():
    assert IMAGENET_MEAN == pytest.approx([123.675 / 255, 116.28 / 255, 103.53 / 255])
    assert IMAGENET_STD == pytest.approx([58.395 / 255, 57.12 / 255, 57.375 / 255])
