"""A pose head is one module with ``@HEADS.register(name)``: nothing else names the heads."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from deepnotes.pose import HEADS, PoseConfig, PoseModel, TrainConfig, load_run
from deepnotes.pose.heads.common import FeatureVector, denormalise, normalise, weighted_mean
from deepnotes.pose.skeleton import NUM_JOINTS
from deepnotes.pose.train import train


class L2Head(nn.Module):
    """The example of docs/pose.md: features (N, C, h, w) -> ``coords`` (N, K, 2) in normalised units,
    trained with the squared error (DeepPose's loss)."""

    def __init__(self, in_channels: int, feature_hw: tuple[int, int], input_hw: tuple[int, int],
                 pool: str = "flatten") -> None:
        super().__init__()
        self.input_hw = tuple(input_hw)
        self.features = FeatureVector(in_channels, feature_hw, pool)
        self.fc = nn.Linear(self.features.dim, NUM_JOINTS * 2)

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"coords": self.fc(self.features(feats)).reshape(-1, NUM_JOINTS, 2)}

    def loss(self, out: dict[str, torch.Tensor], keypoints: torch.Tensor, weight: torch.Tensor
             ) -> dict[str, torch.Tensor]:
        squared = ((out["coords"] - normalise(keypoints, self.input_hw)) ** 2).sum(-1)  # (N, K)
        mse = weighted_mean(squared, weight)
        return {"mse": mse, "loss": mse}

    def decode(self, out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        coords = out["coords"]
        return denormalise(coords, self.input_hw), torch.ones(coords.shape[:2], device=coords.device)


def build_l2(in_channels: int, feature_hw: tuple[int, int], config: PoseConfig) -> L2Head:
    return L2Head(in_channels, feature_hw, config.input_hw, config.pool)


@pytest.fixture
def l2_head(monkeypatch):
    # the registry is module state: a head registered here is gone after the test
    monkeypatch.setattr(HEADS, "_entries", dict(HEADS._entries))
    monkeypatch.setattr(HEADS, "_enum", None)
    HEADS.register("l2", build_l2)
    return "l2"


def test_a_registered_head_builds_trains_and_reloads(l2_head, tiny_data, tmp_path):
    assert "l2" in HEADS and "l2" in HEADS.choices().__members__
    config = PoseConfig(head=l2_head, input_hw=(64, 48), depth=10, width=4)
    model = PoseModel(config)
    assert isinstance(model.head, L2Head) and model.head.features.dim == 16 * 4 * 3
    out = model(torch.randn(2, 3, 64, 48))
    assert out["coords"].shape == (2, NUM_JOINTS, 2)
    terms = model.loss(out, torch.rand(2, NUM_JOINTS, 2) * 40, torch.ones(2, NUM_JOINTS))
    assert set(terms) == {"mse", "loss"} and terms["loss"].requires_grad
    coords, scores = model.decode(out)
    assert coords.shape == (2, NUM_JOINTS, 2) and scores.shape == (2, NUM_JOINTS)
    # the trainer, the checkpoint and load_run know the head by its name only
    records = train(tiny_data["train"], tiny_data["val"], tmp_path / "l2", config,
                    TrainConfig(epochs=1, batch_size=12, lr=3e-3), torch.device("cpu"), log=lambda _: None)
    assert records[-1]["epoch"] == 1 and "train_mse" in records[-1] and "val_AP" in records[-1]
    assert json.loads((tmp_path / "l2" / "config.json").read_text())["head"] == "l2"
    assert isinstance(load_run(tmp_path / "l2", "cpu", head="l2").head, L2Head)


def test_train_help_lists_the_registered_heads():
    from deepnotes.cli import app

    res = CliRunner().invoke(app, ["pose", "train", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    head_line = next(line for line in res.output.splitlines() if "--head" in line)
    for name in ("rle", "heatmap", "regression", *HEADS):
        assert name in head_line, (name, head_line)
