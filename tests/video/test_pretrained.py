"""Video models started from 2D ResNet weights: the backbone loaded, I3D / R(2+1)D inflated, the temporal
modules initialised as documented, ``video train --pretrained`` and the stored input normalisation."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.core import load_checkpoint
from deepnotes.nn.pretrained import IMAGENET_MEAN, IMAGENET_STD, save_torchvision
from deepnotes.nn.resnet import ResNet, core_layers
from deepnotes.video.data.pipeline import eval_config
from deepnotes.video.models import MODELS, build_model, init_from_2d
from deepnotes.video.models.inflate import conv3d_like, inflate_factorised_
from deepnotes.video.models.r2plus1d import factorised

RESNET_MODELS = [n for n in MODELS.names(family="2d") + MODELS.names(family="3d") if n != "c3d"]


def live_resnet(depth: int = 18, width: int = 8, seed: int = 0, **kw) -> ResNet:
    """A ResNet in eval mode with random BN parameters and statistics (every residual branch live)."""
    torch.manual_seed(seed)
    net = ResNet(depth, width, **kw)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.0)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def still_clip(frame: torch.Tensor, t: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, T, H, W), the frame repeated."""
    return frame.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()


@pytest.mark.parametrize(("k", "kt", "t"), [(3, 3, 6), (7, 7, 10), (1, 3, 4)])
def test_inflated_conv_on_identical_frames_equals_the_2d_conv_away_from_the_padding(k, kt, t):
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, k, stride=2, padding=k // 2, bias=False)
    conv3 = conv3d_like(conv, kt, weight_from_2d=True)
    frame = torch.randn(2, 5, 12, 12)
    with torch.no_grad():
        ref, out = conv(frame), conv3(still_clip(frame, t))
    reach = kt // 2
    for i in range(t):
        close = torch.allclose(out[:, :, i], ref, atol=1e-5)
        assert close == (reach <= i < t - reach), i  # equal exactly where the kernel stays inside the clip


@pytest.mark.parametrize(("cin", "cout", "k"), [(8, 8, 3), (8, 16, 3), (3, 16, 7)])
def test_factorised_pair_on_identical_frames_equals_the_2d_conv_and_bn(cin, cout, k):
    """Pairs where R(2+1)D's middle width allows (8 -> 8), single shifted channels elsewhere (the stem-like
    3 -> 16 7x7 and the widening 8 -> 16): eval mode equals the 2D conv + BN at every inner frame."""
    torch.manual_seed(1)
    conv2, bn2 = nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout)
    with torch.no_grad():
        bn2.running_mean.normal_(0, 0.5)
        bn2.running_var.uniform_(0.5, 2.0)
        bn2.weight.uniform_(0.5, 1.5)
    pair, bn3 = factorised(conv2), nn.BatchNorm3d(cout)
    bn3.load_state_dict(bn2.state_dict())
    inflate_factorised_(pair, conv2.weight.detach(), bn3)
    two_d, three_d = nn.Sequential(conv2, bn2).eval(), nn.Sequential(pair, bn3).eval()
    frame = torch.randn(2, cin, 10, 10)
    with torch.no_grad():
        ref, out = two_d(frame), three_d(still_clip(frame, 5))
    for i in (1, 2, 3):
        assert (out[:, :, i] - ref).abs().max() <= 1e-5 * ref.abs().max()
    assert not torch.allclose(out[:, :, 0], ref, atol=1e-3)  # the zero padding at the ends


def build(name: str, frames: int, **kw) -> nn.Module:
    return build_model(name, 5, num_segments=frames, depth=18, width=8, stem_stride=4, input_size=32, **kw)


def logits_2d(model: nn.Module, plain: ResNet, frame: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.fc(plain(frame).mean((2, 3)))


@pytest.mark.parametrize("name", RESNET_MODELS)
def test_every_resnet_model_loads_2d_weights_from_a_torchvision_file(name, tmp_path):
    plain = live_resnet()
    path = save_torchvision(plain, tmp_path / "r18.pth")
    model = build(name, 4)
    report = init_from_2d(model, path)
    assert report.layout == "torchvision" and not report.unused and not report.initialised
    assert len(report.loaded) == len(plain.state_dict())
    target = core_layers(model.backbone)
    for lname, layer in core_layers(plain).items():
        dst = target[lname]
        if isinstance(layer, nn.BatchNorm2d):
            assert torch.equal(dst.running_var, layer.running_var) and torch.equal(dst.weight, layer.weight)
        elif isinstance(dst, nn.Conv2d):
            assert torch.equal(dst.weight, layer.weight)
        elif isinstance(dst, nn.Conv3d):  # I3D: the kernel repeated over time / t sums back to the 2D one
            assert torch.allclose(dst.weight.sum(2), layer.weight, atol=1e-6)
    assert (name in ("i3d", "i3d_full", "r2plus1d")) == bool(report.inflated)


# clip lengths whose centre frame the zero padding cannot reach in ResNet-18: TSM shifts once per block (8),
# I3D has 9 temporal convs (stem + each block's conv1), R(2+1)D 17 (stem + every 3x3), i3d_full 19 (a 7-frame
# stem reaching 3, 16 3x3x3)
@pytest.mark.parametrize(("name", "long"), [("tsn", 4), ("stm", 4), ("tsm", 18), ("i3d", 20),
                                            ("r2plus1d", 36), ("i3d_full", 40)])
def test_models_that_start_as_the_2d_network_on_identical_frames(name, long):
    """TSN and STM equal the 2D network on any clip of identical frames; TSM's zero-padded shift and the 3D
    models' zero temporal padding differ near the clip's ends, so they equal it on a clip long enough that
    the ends do not reach the centre (ResNet-18: one frame per temporal layer)."""
    plain = live_resnet()
    model = build(name, long)
    init_from_2d(model, "mem", state=plain.state_dict())
    model.eval()
    frame = torch.randn(1, 3, 32, 32)
    ref = logits_2d(model, plain, frame)
    with torch.no_grad():
        if hasattr(model, "features"):
            feats = model.features(still_clip(frame, long))[0]
        else:
            feats = model.backbone(still_clip(frame, long)).mean((3, 4))[0].t()
        centre = plain(frame).mean((2, 3))[0]
    assert (feats[long // 2] - centre).abs().max() <= 1e-4 * centre.abs().max()  # float rounding only
    if long > 4:  # and near the ends they differ
        assert (feats[0] - centre).abs().max() > 1e-3 * centre.abs().max()
    if long == 4:
        with torch.no_grad():
            assert torch.allclose(model(still_clip(frame, long)), ref, atol=1e-5)


def test_temporal_modules_start_as_documented():
    plain = live_resnet()
    state = plain.state_dict()
    stm = build("stm", 4)
    init_from_2d(stm, "mem", state=state)
    assert all(not m.cstm[2].weight.any() and not m.expand[1].weight.any()
               for m in stm.modules() if type(m).__name__ == "STMModule")
    tdn = build("tdn", 4)
    init_from_2d(tdn, "mem", state=state)
    stem = plain.stem[0].weight.mean(1, keepdim=True)[..., 2:5, 2:5]  # the 7x7 stem's centre 3x3
    assert torch.allclose(tdn.stem_fusion.encode[0].weight, stem.expand(-1, 6, -1, -1))
    assert not tdn.stem_fusion.encode[1].weight.any()  # S-TDM still starts at zero
    tam = build("tam", 4)
    init_from_2d(tam, "mem", state=state)
    linears = [m.weight for m in tam.modules() if isinstance(m, nn.Linear) and m is not tam.fc]
    assert linears and max(float(w.detach().std()) for w in linears) < 0.005  # N(0, 0.001), mmaction2's TAM
    tea = build("tea", 4)
    init_from_2d(tea, "mem", state=state)
    mta = next(m for m in tea.modules() if type(m).__name__ == "MultipleTemporalAggregation")
    assert all(torch.equal(c.weight[:, 1], torch.ones_like(c.weight[:, 1])) for c in mta.temporal)  # identity


def test_two_stream_loads_rgb_and_cross_modality_flow():
    plain = live_resnet()
    model = build_model("two_stream", 5, num_segments=2, depth=18, width=8, stem_stride=4, new_length=2)
    init_from_2d(model, "mem", state=plain.state_dict())
    assert torch.equal(model.spatial.backbone.stem[0].weight, plain.stem[0].weight)
    flow_stem = model.temporal.backbone.stem[0].weight  # (8, 4, 7, 7): the RGB mean, repeated
    assert torch.allclose(flow_stem, plain.stem[0].weight.mean(1, keepdim=True).expand_as(flow_stem))
    with pytest.raises(ValueError, match="c3d has no ResNet backbone"):
        init_from_2d(build_model("c3d", 5, width=4), "mem", state=plain.state_dict())


def test_train_pretrained_stores_the_normalisation_and_refuses_a_mismatch(motion_data, tiny_train_kwargs,
                                                                          tmp_path):
    net = live_resnet(10, 4, stem_stride=1)  # the tiny runs' 3x3 stem, saved in torchvision's layout
    weights = save_torchvision(net, tmp_path / "tiny.pth")
    config = tmp_path / "run.yaml"
    config.write_text("mean: [0.5, 0.5, 0.5]\nstd: [0.25, 0.25, 0.25]\n")
    tiny = [x for key, value in tiny_train_kwargs.items() if key not in ("cache", "dropout")
            for x in (f"--{key.replace('_', '-')}", str(value))]

    def args(out: str, path) -> list[str]:
        return ["video", "train", "--model", "tsm", "--train", str(motion_data["train"]), "--epochs", "1",
                "--out", str(tmp_path / out), "--config", str(config), "--pretrained", str(path), *tiny]

    runner = CliRunner()
    res = runner.invoke(app, args("run", weights))
    assert res.exit_code == 0, res.output
    assert "pretrained:" in res.output and "torchvision layout" in res.output
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["pretrained"] == str(weights) and stored["mean"] == [0.5, 0.5, 0.5]
    _, meta = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert meta["data"]["mean"] == [0.5, 0.5, 0.5] and meta["data"]["std"] == [0.25, 0.25, 0.25]
    cfg = eval_config(meta["model"], meta["data"])  # what eval and predict normalise with
    assert list(cfg.mean) == [0.5, 0.5, 0.5] and list(cfg.std) == [0.25, 0.25, 0.25]
    res = runner.invoke(app, ["video", "eval", str(tmp_path / "run"), "--list", str(motion_data["val"]),
                              "--workers", "0", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    weights.unlink()  # --resume takes the weights from the checkpoint, not from the file again
    res = runner.invoke(app, ["video", "train", "--out", str(tmp_path / "run"), "--resume", "--epochs", "2"])
    assert res.exit_code == 0 and "pretrained:" not in res.output, res.output
    # a file of another width, and a 7x7 stem for the 3x3 one --stem-stride 1 builds: errors naming the key
    save_torchvision(live_resnet(10, 8, stem_stride=1), tmp_path / "wide.pth")
    save_torchvision(live_resnet(10, 4), tmp_path / "std.pth")
    for name, message in [("wide.pth", "'conv1.weight' (our 'stem.0.weight') is (8, 3, 3, 3)"),
                          ("std.pth", "--stem-stride 2 or 4")]:
        res = runner.invoke(app, args(f"run-{name}", tmp_path / name))
        assert res.exit_code == 2 and message in res.output, res.output


def test_runs_without_stored_statistics_use_imagenet():
    cfg = eval_config("tsm", {"segments": 4, "input_size": 16})  # the data meta of a run from before
    assert tuple(cfg.mean) == IMAGENET_MEAN and tuple(cfg.std) == IMAGENET_STD
