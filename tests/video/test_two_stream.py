"""Two-stream network: cross-modality init, late fusion, paired RGB + flow data, and training end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepnotes.video.config import TrainConfig
from deepnotes.video.data.dataset import RGBLoader
from deepnotes.video.data.lists import ListError, read_list
from deepnotes.video.models import build_model
from deepnotes.video.models.two_stream import LateFusion, StreamView, cross_modality_init, parse_fusion
from deepnotes.video.two_stream.dataset import (
    TwoStreamLoader,
    flow_train_transform,
    pair_flow_lists,
    two_stream_loader,
)
from deepnotes.video.two_stream.flow import extract_list
from deepnotes.video.two_stream.synth import CLASSES, write_appearance_motion

TINY = {"num_segments": 2, "depth": 10, "width": 4, "stem_stride": 1, "dropout": 0.0}


@pytest.fixture(scope="session")
def am_data(tmp_path_factory):
    """appearance_motion: 4 classes x 2 train / 1 val videos of 6 frames 16x16, with extracted flow."""
    root = tmp_path_factory.mktemp("am")
    paths = write_appearance_motion(root, 2, 1, frames=6, size=16, seed=0)
    for split in ("train", "val"):
        extract_list(paths[split], root / f"flow_{split}", method="dis", formats=("npz",),
                     show_progress=False)
    return root, paths


def test_cross_modality_init_averages_rgb_weights_and_copies_the_rest():
    rgb = build_model("tsn", 5, in_channels=3, **TINY)
    flow = build_model("tsn", 5, in_channels=6, **TINY)
    with torch.no_grad():
        for p in rgb.parameters():
            p.normal_()
    cross_modality_init(flow, rgb)
    w_rgb, w_flow = rgb.backbone.stem[0].weight, flow.backbone.stem[0].weight
    assert w_flow.shape[1] == 6
    for c in range(6):
        torch.testing.assert_close(w_flow[:, c], w_rgb.mean(1))
    torch.testing.assert_close(flow.fc.weight, rgb.fc.weight)
    first_of_stage_2 = [net.backbone.stages[1][0].conv1[0].weight for net in (flow, rgb)]
    torch.testing.assert_close(*first_of_stage_2)


def test_weighted_fusion_is_the_weighted_softmax_average():
    z1, z2 = torch.randn(4, 5), torch.randn(4, 5)
    fused = LateFusion()([z1, z2])  # default 1 : 1.5
    expected = (1.0 * F.softmax(z1, 1) + 1.5 * F.softmax(z2, 1)) / 2.5
    torch.testing.assert_close(fused, expected)
    assert parse_fusion("weighted") == ("weighted", (1.0, 1.5))
    assert parse_fusion("learned:2,1") == ("learned", (2.0, 1.0))
    with pytest.raises(ValueError, match="unknown fusion"):
        parse_fusion("max")
    with pytest.raises(ValueError, match="two non-negative"):
        parse_fusion("weighted:1,2,3")


def test_two_stream_model_outputs_fused_log_probs_and_trains_streams_separately():
    model = build_model("two_stream", 4, new_length=2, fusion="learned", **TINY)
    x = torch.randn(3, 3 + 4, 2, 16, 16)
    model.train()
    out = model(x)
    z_rgb, z_flow = model.last_streams
    w = model.fusion.weights()
    torch.testing.assert_close(out.exp(), w[0] * F.softmax(z_rgb, 1) + w[1] * F.softmax(z_flow, 1))
    torch.testing.assert_close(w, torch.tensor([0.4, 0.6]))  # initialised from 1 : 1.5
    labels = torch.tensor([0, 1, 2])
    # the fused NLL alone reaches only the fusion weights: the streams are detached from it
    F.nll_loss(out, labels).backward()
    assert model.fusion.logit.grad is not None and model.fusion.logit.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.spatial.parameters())
    model.zero_grad()
    loss = model.loss(model(x), labels)
    expected = F.cross_entropy(model.last_streams[0], labels) + F.cross_entropy(model.last_streams[1], labels)
    assert loss.item() == pytest.approx(expected.item() + F.nll_loss(model(x), labels).item(), rel=1e-5)
    model.eval()
    torch.testing.assert_close(StreamView(model, "rgb")(x), model.spatial(x[:, :3]))
    torch.testing.assert_close(StreamView(model, "flow")(x), model.temporal(x[:, 3:]))
    with pytest.raises(ValueError, match="3 \\+ 2\\*2 channels"):
        model(torch.randn(1, 5, 2, 16, 16))


def test_paired_loader_lays_out_rgb_and_flow_and_matches_on_the_fly_flow(am_data):
    root, paths = am_data
    rgb_records = read_list(paths["train"])
    flow_records = read_list(root / "flow_train/flow_list.txt", kind="rawframes")
    pairs = pair_flow_lists(rgb_records, flow_records)
    stored = TwoStreamLoader(RGBLoader(), pairs, new_length=3)
    fly = TwoStreamLoader(RGBLoader(), None, new_length=3)
    idx = np.array([0, 2, 5])
    a, b = stored(rgb_records[0], idx), fly(rgb_records[0], idx)
    assert a.shape == (3, 16, 16, 3 + 6) and a.dtype == np.uint8
    # flow computed now from the same decoded frames equals what extraction stored (npz is lossless)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[..., :3], RGBLoader()(rgb_records[0], idx))
    # frame 0 takes flow fields -1, 0, 1 clamped to 0, 0, 1: channels x1 y1 x2 y2 x3 y3
    np.testing.assert_array_equal(a[0, ..., 3:5], a[0, ..., 5:7])


def test_mismatched_flow_list_names_the_first_mismatch(am_data, tmp_path):
    root, paths = am_data
    lines = (root / "flow_train/flow_list.txt").read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    bad = root / "flow_train" / "swapped.txt"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ListError, match=r"first mismatch: .*train.txt:3 .*swapped.txt:3"):
        pair_flow_lists(read_list(paths["train"]), read_list(bad, kind="rawframes"))
    with pytest.raises(ListError, match="has 8 samples .* has 7"):
        short = root / "flow_train" / "short.txt"
        short.write_text("\n".join(lines[:7]) + "\n")
        pair_flow_lists(read_list(paths["train"]), read_list(short, kind="rawframes"))


def test_a_flow_method_other_than_the_stored_one_is_warned_about(am_data, caplog):
    root, paths = am_data  # stored with DIS
    rgb = RGBLoader()
    for method, warned in (("dis", False), ("farneback", True)):
        cfg = TrainConfig(model="two_stream", train=str(paths["train"]), out="", flow_method=method,
                          flow_train=str(root / "flow_train/flow_list.txt"))
        caplog.clear()
        with caplog.at_level("WARNING", logger="deepnotes.video"):
            two_stream_loader(cfg, rgb)
        said = "computed with 'dis' but --flow-method is 'farneback'"
        assert any(said in r.message for r in caplog.records) == warned


def test_two_stream_flip_negates_x_of_flow_only():
    tf = flow_train_transform(8, bound=20.0, flip=True, label_map={0: 1}, std=1.0, flow_from=3, channels=7)
    clip = torch.full((2, 7, 8, 8), 0.5)
    clip[:, 3::2] = 0.75  # x = +10 px, y = 0
    clip[:, 4::2] = 0.25  # y = -10 px
    flipped = None
    for seed in range(20):
        out, label = tf(clip, 0, np.random.default_rng(seed))
        if label == 1:
            flipped = out
            break
    assert flipped is not None
    # x = +10, y = -10 px before; the crop zooms both by the same factor, the flip negates x only
    assert (flipped[:, 3::2] < -9).all()
    torch.testing.assert_close(flipped[:, 3::2], flipped[:, 4::2])
    # RGB channels are normalised, not negated: (0.5 - mean) / std
    assert flipped[:, 0].mean().item() == pytest.approx((0.5 - 0.485) / 0.229, abs=1e-4)


def test_two_stream_training_crop_follows_the_crop_option():
    from deepnotes.video.two_stream.dataset import flow_test_transform, two_stream_transform

    cfg = TrainConfig(model="two_stream", train="t.txt", out="o", input_size=8, crop="center", flip=False,
                      new_length=1, flow_bound=20.0)
    clip = torch.rand(2, 5, 12, 16, generator=torch.Generator().manual_seed(0))
    train_tf, test_tf = two_stream_transform(cfg, train=True), flow_test_transform(8, 20.0, flow_from=3)
    a, _ = train_tf(clip, 0, np.random.default_rng(0))
    b, _ = train_tf(clip, 0, np.random.default_rng(1))
    torch.testing.assert_close(a, b)  # no random crop: the claim's TSM baseline trains with centre crops too
    torch.testing.assert_close(a, test_tf(clip, 0, np.random.default_rng(0))[0][0])
    with pytest.raises(ValueError, match="--crop resized: clips with optical flow train with"):
        resized = TrainConfig(model="two_stream", train="t.txt", out="o", crop="resized")
        two_stream_transform(resized, train=True)
    # the multiscale crop takes --crop-scales: at scale 1 alone a square clip is kept whole (no randomness)
    whole = TrainConfig(model="two_stream", train="t.txt", out="o", input_size=8, flip=False, new_length=1,
                        crop_scales=(1.0,))
    square = clip[..., :12]
    c, _ = two_stream_transform(whole, train=True)(square, 0, np.random.default_rng(0))
    d, _ = two_stream_transform(whole, train=True)(square, 0, np.random.default_rng(5))
    torch.testing.assert_close(c, d)
    e, _ = two_stream_transform(cfg, train=True)(square, 0, np.random.default_rng(0))
    assert c.shape == e.shape and not torch.allclose(c, e)  # the whole frame, not the centre crop


def test_train_two_stream_evaluates_each_stream_and_the_fusion(am_data, tmp_path):
    from deepnotes.video.config import TrainConfig
    from deepnotes.video.training import evaluate, train

    root, paths = am_data
    cfg = TrainConfig(model="two_stream", train=str(paths["train"]), val=str(paths["val"]),
                      out=str(tmp_path / "run"), flow_train=str(root / "flow_train/flow_list.txt"),
                      flow_val=str(root / "flow_val/flow_list.txt"),
                      new_length=2, segments=2, input_size=16, depth=10, width=4, stem_stride=1, batch_size=4,
                      epochs=1, workers=0, dropout=0.0, device="cpu", fusion="weighted:1,1.5")
    metrics = train(cfg)
    for key in ("top1", "rgb_top1", "flow_top1", "rgb_mean_class_acc", "flow_mean_class_acc"):
        assert 0.0 <= metrics[-1][key] <= 1.0
    meta = json.loads((tmp_path / "run/config.json").read_text())
    assert meta["classes"] == list(CLASSES) and meta["model"] == "two_stream"
    # evaluation without a flow list computes flow on the fly
    res = evaluate(tmp_path / "run", paths["val"], workers=0, device="cpu")
    assert res["n"] == 4 and res["skipped"] == 0
