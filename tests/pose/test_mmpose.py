"""`pose import-mmpose`: mmpose top-down ResNet heatmap / RLE checkpoints as runs, checked against mmpose's
own computation written out here from its layout (ResNet, HeatmapHead, RLEHead, RealNVP.backward_p,
codecs, TopdownPoseEstimator's mapping back to the image)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from deepnotes.cli import app
from deepnotes.pose.config import PoseConfig
from deepnotes.pose.data.topdown import to_tensor
from deepnotes.pose.evaluate import predict_boxes
from deepnotes.pose.mmpose import from_mmpose, to_mmpose
from deepnotes.pose.model import PoseModel
from deepnotes.pose.train import load_run

runner = CliRunner()
HW = (128, 96)


def _random_model(head: str, depth: int = 18, width: int = 8, seed: int = 0) -> PoseModel:
    torch.manual_seed(seed)
    cfg = PoseConfig(head=head, input_hw=HW, heatmap_hw=(32, 24), depth=depth, width=width, stages=4,
                     stem_stride=4, deconv_channels=16, pool="avg", frame="mmpose", norm="imagenet")
    model = PoseModel(cfg).eval()
    with torch.no_grad():  # weights and BatchNorm statistics away from their initial values
        for name, t in model.state_dict().items():
            if t.is_floating_point() and "masks" not in name:
                t.copy_(torch.rand_like(t) + 0.5 if "running_var" in name else torch.randn_like(t) * 0.1)
    return model


# --- mmpose's computation from its state dict (the reference) -------------------------------------------

def _bn(x, s, p):
    return F.batch_norm(x, s[p + "running_mean"], s[p + "running_var"], s[p + "weight"], s[p + "bias"],
                        False, 0.0, 1e-5)


def _block(x, s, p, bottleneck, stride):
    """mmpose's BasicBlock / Bottleneck (style='pytorch': the stride on the 3x3 conv)."""
    if bottleneck:
        y = F.relu(_bn(F.conv2d(x, s[p + "conv1.weight"]), s, p + "bn1."))
        y = F.relu(_bn(F.conv2d(y, s[p + "conv2.weight"], stride=stride, padding=1), s, p + "bn2."))
        y = _bn(F.conv2d(y, s[p + "conv3.weight"]), s, p + "bn3.")
    else:
        y = F.relu(_bn(F.conv2d(x, s[p + "conv1.weight"], stride=stride, padding=1), s, p + "bn1."))
        y = _bn(F.conv2d(y, s[p + "conv2.weight"], padding=1), s, p + "bn2.")
    if p + "downsample.0.weight" in s:
        x = _bn(F.conv2d(x, s[p + "downsample.0.weight"], stride=stride), s, p + "downsample.1.")
    return F.relu(y + x)


def mmpose_backbone(x, s):
    x = F.relu(_bn(F.conv2d(x, s["backbone.conv1.weight"], stride=2, padding=3), s, "backbone.bn1."))
    x = F.max_pool2d(x, 3, 2, 1)
    bottleneck = "backbone.layer1.0.conv3.weight" in s
    for stage in range(1, 5):
        j = 0
        while f"backbone.layer{stage}.{j}.conv1.weight" in s:
            x = _block(x, s, f"backbone.layer{stage}.{j}.", bottleneck, 2 if stage > 1 and j == 0 else 1)
            j += 1
    return x


def mmpose_heatmaps(x, s, hp="head."):
    y, i = mmpose_backbone(x, s), 0
    while f"{hp}deconv_layers.{i}.weight" in s:
        y = F.conv_transpose2d(y, s[f"{hp}deconv_layers.{i}.weight"], stride=2, padding=1)
        y = F.relu(_bn(y, s, f"{hp}deconv_layers.{i + 1}."))
        i += 3
    return F.conv2d(y, s[hp + "final_layer.weight"], s[hp + "final_layer.bias"])


def mmpose_rle(x, s, hp="head."):
    """RLEHead.forward after the GlobalAveragePooling neck, with predict()'s sigmoid on sigma."""
    out = F.linear(mmpose_backbone(x, s).mean(dim=(2, 3)), s[hp + "fc.weight"], s[hp + "fc.bias"])
    out = out.reshape(-1, 17, 4)
    return out[..., :2], out[..., 2:].sigmoid()


def mmpose_flow_log_prob(x, s, fp):
    """RealNVP.log_prob: backward_p runs the coupling layers from the last to the first."""
    mask = s[fp + "mask"]
    z, log_det = x, x.new_zeros(x.shape[0])
    for i in reversed(range(len(mask))):
        def mlp(net, v, i=i):
            v = F.leaky_relu(F.linear(v, s[f"{fp}{net}.{i}.0.weight"], s[f"{fp}{net}.{i}.0.bias"]))
            v = F.leaky_relu(F.linear(v, s[f"{fp}{net}.{i}.2.weight"], s[f"{fp}{net}.{i}.2.bias"]))
            v = F.linear(v, s[f"{fp}{net}.{i}.4.weight"], s[f"{fp}{net}.{i}.4.bias"])
            return torch.tanh(v) if net == "s" else v

        kept = mask[i] * z
        sc, tr = mlp("s", kept) * (1 - mask[i]), mlp("t", kept) * (1 - mask[i])
        z = (1 - mask[i]) * (z - tr) * torch.exp(-sc) + kept
        log_det = log_det - sc.sum(dim=1)
    prior = torch.distributions.MultivariateNormal(s[fp + "loc"], s[fp + "cov"])
    return prior.log_prob(z) + log_det


# --- tests --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("head, depth", [("heatmap", 18), ("heatmap", 50), ("rle", 50)])
def test_imported_model_computes_what_mmpose_computes(head, depth):
    state = to_mmpose(_random_model(head, depth))
    model = from_mmpose(state, head, HW)
    assert model.config.depth == depth and model.config.frame == "mmpose" and model.config.norm == "imagenet"
    x = torch.randn(2, 3, *HW)
    with torch.no_grad():
        out = model(x)
        if head == "heatmap":
            torch.testing.assert_close(out["heatmaps"], mmpose_heatmaps(x, state), atol=1e-4, rtol=1e-4)
        else:
            mu, sigma = mmpose_rle(x, state)
            torch.testing.assert_close(out["mu"], mu, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(out["sigma"], sigma, atol=1e-5, rtol=1e-4)
            # decoding: RegressionLabel's keypoints = u * (W, H), scores = 1 - mean(sigma)
            xy, score = model.decode(out)
            torch.testing.assert_close(xy, mu * torch.tensor([HW[1], HW[0]]))
            torch.testing.assert_close(score, 1 - sigma.mean(-1))


def test_imported_flow_is_mmpose_realnvp():
    state = to_mmpose(_random_model("rle", depth=18), version=1)
    for p in ("s", "t"):  # asymmetric flow layers, so that the order of the layers matters
        for i in range(6):
            state[f"head.loss_module.flow_model.{p}.{i}.0.weight"].normal_(0, 0.5)
    model = from_mmpose(state, "rle", HW)
    r = torch.randn(64, 2)
    with torch.no_grad():
        ours = model.head.flow.log_prob(r)
    ref = mmpose_flow_log_prob(r, state, "head.loss_module.flow_model.")
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    # the layer order matters for these weights: run in mmpose's order without the reversal, it differs
    reversed_state = {**state, "head.loss_module.flow_model.mask": state["head.loss_module.flow_model.mask"]}
    for p in ("s", "t"):
        for i in range(6):
            for k in ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"):
                reversed_state[f"head.loss_module.flow_model.{p}.{i}.{k}"] = \
                    state[f"head.loss_module.flow_model.{p}.{5 - i}.{k}"]
    assert not torch.allclose(mmpose_flow_log_prob(r, reversed_state, "head.loss_module.flow_model."), ref,
                              atol=1e-3)


def test_heatmap_decoding_and_crop_placement_are_mmposes():
    """A heatmap peak at pixel (j, i) is crop (j, i) x stride (MSRAHeatmap), and crop point p maps to the
    image as p / input_size * scale + center - scale / 2 (TopdownPoseEstimator)."""
    model = from_mmpose(to_mmpose(_random_model("heatmap")), "heatmap", HW)
    hm = torch.zeros(1, 17, 32, 24)
    hm[0, :, 10, 7] = 1.0  # no neighbour higher: no quarter shift
    xy, score = model.decode({"heatmaps": hm})
    torch.testing.assert_close(xy[0, 0], torch.tensor([7 * 4.0, 10 * 4.0]))
    hm[0, 3] = -1.0  # no positive value: mmpose points at (-1, -1) heatmap pixels
    xy, score = model.decode({"heatmaps": hm})
    torch.testing.assert_close(xy[0, 3], torch.tensor([-4.0, -4.0]))
    assert score[0, 3] == -1.0  # and keeps the raw peak as score


def test_rle_predictions_land_where_mmpose_puts_them():
    model = from_mmpose(to_mmpose(_random_model("rle")), "rle", HW)
    u = torch.rand(17, 2)
    with torch.no_grad():  # constant outputs: mu = u whatever the crop
        model.head.fc_mu.weight.zero_()
        model.head.fc_mu.bias.copy_(u.reshape(-1))
    image = np.random.default_rng(0).integers(0, 255, (150, 120, 3), dtype=np.uint8)
    box = np.array([20.0, 15.0, 50.0, 90.0])
    coords, _ = predict_boxes(model, image, [box], torch.device("cpu"))
    # mmpose: bbox_xywh -> center, scale * 1.25, fixed to the crop's aspect ratio (w/h = 96/128)
    center = box[:2] + box[2:] / 2
    w, h = box[2:] * 1.25
    scale = np.array([w, w / 0.75]) if w > h * 0.75 else np.array([h * 0.75, h])
    keypoints = u.numpy() * np.array([HW[1], HW[0]])
    want = keypoints / np.array([HW[1], HW[0]]) * scale + center - 0.5 * scale
    np.testing.assert_allclose(coords[0], want, atol=1e-4)


def test_imagenet_normalisation_is_mmposes_preprocessor():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    want = ((rgb - mean) / std).transpose(2, 0, 1)
    np.testing.assert_allclose(to_tensor(rgb, "imagenet").numpy(), want, atol=1e-5)


@pytest.mark.parametrize("head", ["heatmap", "rle"])
@pytest.mark.parametrize("version", [0, 1])
def test_cli_round_trip_consumes_every_key(head, version, tmp_path, tiny_data):
    model = _random_model(head)
    state = to_mmpose(model, version)
    ckpt = tmp_path / "zoo.pth"
    torch.save({"meta": {"epoch": 210}, "state_dict": state}, ckpt)
    out = tmp_path / "run"
    res = runner.invoke(app, ["pose", "import-mmpose", str(ckpt), "--head", head, "--out", str(out),
                              "--input-size", "128,96"])
    assert res.exit_code == 0, res.output
    info = json.loads((out / "import.json").read_text())
    assert info["keys"] == len(state) and info["imported_from"] == "mmpose"
    back = load_run(out)
    x = torch.randn(2, 3, *HW)
    with torch.no_grad():
        a, b = model(x), back(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    for k, v in to_mmpose(back, version).items():  # and back to their layout, unchanged
        assert torch.equal(v, state[k]), k
    # eval and predict use the run as it is
    res = runner.invoke(app, ["pose", "eval", str(out), "--ann", str(tiny_data["val"]), "--device", "cpu",
                              "--flip-test"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["pose", "import-mmpose", str(ckpt), "--head", head, "--out", str(out)])
    assert res.exit_code == 2 and "exists" in res.output


def _import(tmp_path, state, head):
    ckpt = tmp_path / "zoo.pth"
    torch.save(state, ckpt)
    return runner.invoke(app, ["pose", "import-mmpose", str(ckpt), "--head", head, "--out",
                               str(tmp_path / "run"), "--input-size", "128,96"])


def test_errors_name_the_first_unknown_or_missing_key(tmp_path):
    state = to_mmpose(_random_model("heatmap"))
    extra = {**state, "head.conv_layers.0.weight": torch.zeros(16, 16, 3, 3)}
    res = _import(tmp_path, extra, "heatmap")
    assert res.exit_code == 2 and "unknown key 'head.conv_layers.0.weight'" in res.output
    missing = {k: v for k, v in state.items() if k != "backbone.layer2.0.conv1.weight"}
    res = _import(tmp_path, missing, "heatmap")
    assert res.exit_code == 2 and "missing key 'backbone.layer2.0.conv1.weight'" in res.output
    res = _import(tmp_path, state, "rle")
    assert res.exit_code == 2 and "not an RLE head" in res.output and "--head heatmap" in res.output
    rle = to_mmpose(_random_model("rle"))
    res = _import(tmp_path, rle, "heatmap")
    assert res.exit_code == 2 and "not a heatmap head" in res.output
    res = _import(tmp_path, {"model.conv.weight": torch.zeros(1)}, "rle")
    assert res.exit_code == 2 and "backbone.conv1.weight" in res.output


def test_architectures_ours_cannot_hold_are_refused(tmp_path):
    state = to_mmpose(_random_model("heatmap"))
    # deconvolutions of different widths: our head has one width
    state["head.deconv_layers.3.weight"] = torch.zeros(16, 8, 4, 4)
    res = _import(tmp_path, state, "heatmap")
    assert res.exit_code == 2 and "head.deconv_layers.3.weight has shape (16, 8, 4, 4)" in res.output
    rle = to_mmpose(_random_model("rle"))
    rle["head.fc.weight"] = torch.zeros(34, rle["head.fc.weight"].shape[1])  # a plain RegressionHead
    rle["head.fc.bias"] = torch.zeros(34)
    res = _import(tmp_path, rle, "rle")
    assert res.exit_code == 2 and "head.fc.weight has shape (34," in res.output
    rle = to_mmpose(_random_model("rle"))
    rle["head.loss_module.flow_model.cov"] = 2 * torch.eye(2)
    res = _import(tmp_path, rle, "rle")
    assert res.exit_code == 2 and "standard normal" in res.output


class NotWeights:
    """Any pickled object: unpickling it could run code, so weights_only loading refuses it."""


def test_pickled_objects_are_refused(tmp_path):
    ckpt = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": NotWeights()}, ckpt)
    res = runner.invoke(app, ["pose", "import-mmpose", str(ckpt), "--head", "rle", "--out",
                              str(tmp_path / "r")])
    assert res.exit_code == 2 and "weights_only" in res.output
    assert not (tmp_path / "r").exists()


def test_export_refuses_models_in_our_conventions():
    model = PoseModel(PoseConfig(head="rle", input_hw=(64, 48), depth=10, width=4))
    with pytest.raises(ValueError, match="mmpose's conventions"):
        to_mmpose(model)
