"""The same train command under torchrun with 2 CPU processes (gloo) gives what one process gives."""

import json
import os
import subprocess
import sys

import torch

from deepnotes.core import load_checkpoint
from deepnotes.video import TrainConfig, train


def test_two_processes_match_one(motion_data, tiny_train_kwargs, tmp_path):
    kw = {**tiny_train_kwargs, "freeze_bn": True}  # BN statistics are per process on CPU (no SyncBN there)
    kw.pop("batch_size")
    single = train(TrainConfig(model="tsm", train=str(motion_data["train"]), val=str(motion_data["val"]),
                               out=str(tmp_path / "one"), epochs=1, batch_size=4, **kw))
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "deepnotes.cli", "video", "train", "--model", "tsm", "--train", str(motion_data["train"]),
            "--val", str(motion_data["val"]), "--out", str(tmp_path / "two"), "--epochs", "1",
            "--batch-size", "2", "--segments", "4", "--input-size", "16", "--depth", "10", "--width", "4",
            "--stem-stride", "1", "--workers", "0", "--cache", "--crop", "center", "--lr", "1e-3",
            "--device", "cpu", "--dropout", "0", "--freeze-bn"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, _ = load_checkpoint(tmp_path / "one" / "checkpoint.safetensors")
    two, meta = load_checkpoint(tmp_path / "two" / "checkpoint.safetensors")
    for k, v in one["model"].items():
        assert torch.allclose(v, two["model"][k], atol=1e-5), k
    multi = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert abs(multi[0]["train_loss"] - single[0]["train_loss"]) < 1e-5
    assert multi[0]["top1"] == single[0]["top1"] and abs(multi[0]["loss"] - single[0]["loss"]) < 1e-5
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2
