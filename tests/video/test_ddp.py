"""The same train command under torchrun with 2 CPU processes (gloo) gives what one process gives."""

import json
import os
import subprocess
import sys

import torch

from deepnotes.core import load_checkpoint
from deepnotes.video import TrainConfig, evaluate, train

TINY_FLAGS = ["--epochs", "1", "--segments", "4", "--input-size", "16", "--depth", "10", "--width", "4",
              "--stem-stride", "1", "--workers", "0", "--cache", "--crop", "center", "--lr", "1e-3",
              "--device", "cpu", "--dropout", "0"]


def _torchrun(train_list, val_list, out, *flags, root=None):
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "deepnotes.cli", "video", "train", "--model", "tsm", "--train", str(train_list),
            "--val", str(val_list), "--out", str(out), *TINY_FLAGS, *flags]
    if root is not None:
        args += ["--root", str(root)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def _same_weights(a, b):
    one, _ = load_checkpoint(a / "checkpoint.safetensors")
    two, _ = load_checkpoint(b / "checkpoint.safetensors")
    for k, v in one["model"].items():
        assert torch.allclose(v, two["model"][k], atol=1e-5), k


def test_two_processes_match_one(motion_data, tiny_train_kwargs, tmp_path):
    kw = {**tiny_train_kwargs, "freeze_bn": True}  # BN statistics are per process on CPU (no SyncBN there)
    kw.pop("batch_size")
    single = train(TrainConfig(model="tsm", train=str(motion_data["train"]), val=str(motion_data["val"]),
                               out=str(tmp_path / "one"), epochs=1, batch_size=4, **kw))
    multi = _torchrun(motion_data["train"], motion_data["val"], tmp_path / "two", "--batch-size", "2",
                      "--freeze-bn")
    _same_weights(tmp_path / "one", tmp_path / "two")
    assert abs(multi[0]["train_loss"] - single[0]["train_loss"]) < 1e-5
    assert multi[0]["top1"] == single[0]["top1"] and abs(multi[0]["loss"] - single[0]["loss"]) < 1e-5
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2


def test_an_unreadable_video_leaves_two_processes_equal_to_one(data_with_bad_video, tiny_train_kwargs,
                                                                tmp_path):
    # one clip per process: the step holding the corrupt video has nothing readable on one process, which must
    # still train the other's clip (weighted as one process with batch 2 weighs it), not skip the step
    d = data_with_bad_video
    kw = {**tiny_train_kwargs, "freeze_bn": True, "batch_size": 2}
    (single,) = train(TrainConfig(model="tsm", train=str(d["train"]), val=str(d["val"]), root=str(d["root"]),
                                  out=str(tmp_path / "one"), epochs=1, **kw))
    (multi,) = _torchrun(d["train"], d["val"], tmp_path / "two", "--batch-size", "1", "--freeze-bn",
                         root=d["root"])
    assert single["train_skipped"] == multi["train_skipped"] == 1
    _same_weights(tmp_path / "one", tmp_path / "two")
    assert abs(multi["train_loss"] - single["train_loss"]) < 1e-5


def test_validation_under_ddp_scores_the_saved_weights(motion_data, tmp_path):
    # without --freeze-bn each process's BatchNorm statistics drift apart in training; metrics.json must
    # still describe the checkpoint rank 0 writes
    (multi,) = _torchrun(motion_data["train"], motion_data["val"], tmp_path / "two", "--batch-size", "2")
    res = evaluate(tmp_path / "two", motion_data["val"], workers=0, device="cpu")
    assert abs(res["loss"] - multi["loss"]) < 1e-5 and res["top1"] == multi["top1"]
