import pytest
import torch

from deepnotes.optim import AdamW
from deepnotes.pose.data.coco import load_coco
from deepnotes.pose.data.topdown import TopDownDataset, collate
from deepnotes.pose.model import PoseConfig, PoseModel


@pytest.fixture(scope="module")
def batch(tiny_data):
    ds = TopDownDataset(load_coco(tiny_data["train"]).samples[:8], (64, 48))
    return collate([ds[i] for i in range(len(ds))])


@pytest.mark.parametrize("head", ["rle", "regression", "heatmap"])
def test_each_head_fits_a_small_batch(batch, head):
    """Learning works end to end: on 8 fixed crops the decoded error falls well below its start."""
    torch.manual_seed(0)
    model = PoseModel(PoseConfig(head=head, input_hw=(64, 48), heatmap_hw=(16, 12), depth=10, width=8,
                                 deconv_channels=16))
    opt = AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)

    def error():
        model.eval()
        with torch.no_grad():
            xy, _ = model.decode(model(batch["image"]))
        model.train()
        w = batch["weight"] > 0
        return (xy - batch["keypoints"]).norm(dim=-1)[w].mean().item()

    before = error()
    for _ in range(60):
        terms = model.loss(model(batch["image"]), batch["keypoints"], batch["weight"])
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    assert error() < 0.5 * before


def test_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown head"):
        PoseModel(PoseConfig(head="dsnt"))
    with pytest.raises(ValueError, match="unknown RLE base"):
        PoseModel(PoseConfig(head="rle", rle_base="cauchy", width=4, depth=10))
    with pytest.raises(ValueError, match="unknown pooling"):
        PoseModel(PoseConfig(head="regression", pool="max", width=4, depth=10))
    with pytest.raises(ValueError, match="unknown heatmap decoder"):
        PoseModel(PoseConfig(head="heatmap", decoder="mean", width=4, depth=10))


def test_config_round_trips_through_json_types():
    cfg = PoseConfig(head="heatmap", input_hw=(64, 48), heatmap_hw=(8, 6))
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.to_dict().items()}
    assert PoseConfig.from_dict(as_json) == cfg


def test_pooling_choices_set_the_head_input():
    for pool, dim in (("avg", 32), ("flatten", 32 * 4 * 3)):
        model = PoseModel(PoseConfig(head="rle", input_hw=(64, 48), depth=10, width=8, pool=pool))
        assert model.feature_hw == (4, 3) and model.head.fc_mu.in_features == dim
        feats = torch.randn(2, 32, 4, 3)
        want = feats.mean(dim=(2, 3)) if pool == "avg" else feats.reshape(2, -1)
        assert torch.equal(model.head.features(feats), want)
