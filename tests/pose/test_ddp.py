"""`deepnotes pose train` under torchrun with 2 CPU processes (gloo) takes the steps one process takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from deepnotes.core import load_checkpoint
from deepnotes.pose.model import PoseConfig
from deepnotes.pose.train import TrainConfig, train


def test_two_processes_match_one(tiny_data, tmp_path):
    # BatchNorm statistics would be per process on CPU (no SyncBatchNorm there): keep the running ones
    # the backbone `pose train` picks for 64x48 crops: a 2x stem and 4 stages
    config = PoseConfig(head="rle", input_hw=(64, 48), heatmap_hw=(8, 6), depth=10, width=4,
                        deconv_channels=16, stem_stride=2, stages=4)
    single = train(tiny_data["train"], tiny_data["val"], tmp_path / "one", config,
                   TrainConfig(epochs=2, batch_size=8, lr=3e-3, freeze_bn=True), torch.device("cpu"),
                   log=lambda _: None)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "deepnotes.cli", "pose", "train", "--head", "rle", "--train", str(tiny_data["train"]),
            "--val", str(tiny_data["val"]), "--out", str(tmp_path / "two"), "--epochs", "2",
            "--batch-size", "4", "--input-size", "64,48", "--heatmap-size", "8,6", "--width", "4",
            "--depth", "10", "--lr", "3e-3", "--device", "cpu", "--freeze-bn"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("epoch 2:") == 1  # rank 0 logs, once
    one, _ = load_checkpoint(tmp_path / "one" / "checkpoint.safetensors")
    two, _ = load_checkpoint(tmp_path / "two" / "checkpoint.safetensors")
    for k, v in one["model"].items():
        assert torch.allclose(v, two["model"][k], atol=1e-5), k
    multi = json.loads((tmp_path / "two" / "metrics.json").read_text())
    for key in ("train_loss", "train_flow", "val_AP", "val_mean_error_px"):
        assert abs(multi[-1][key] - single[-1][key]) < 1e-4, key
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2
