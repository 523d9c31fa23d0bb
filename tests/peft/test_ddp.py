"""`deepnotes peft train` under torchrun with 2 CPU processes (gloo) takes the steps one process takes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from deepnotes.core import load_checkpoint
from deepnotes.peft.train import train


def _without_dropout(src, out):
    """A copy of a base model folder with every dropout at 0: each process would draw its own masks."""
    shutil.copytree(src, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg.update({k: 0.0 for k in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout", "attention_dropout",
                                 "activation_dropout") if k in cfg})
    (out / "config.json").write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def bases(pretrained, tmp_path_factory):
    from deepnotes.peft.pretrain import pretrain

    root = tmp_path_factory.mktemp("nodrop")
    pretrain("bart", "tiny", root / "bart-dropout", steps=2, batch_size=2, device="cpu", max_chars=20000)
    return {"gpt2": _without_dropout(pretrained, root / "gpt2"),
            "bart": _without_dropout(root / "bart-dropout", root / "bart")}


# LoRA on GPT-2; prefix tuning (MLP reparameterisation, every attention of BART) through DDP
@pytest.mark.parametrize(("method", "arch", "marker"),
                         [("lora", "gpt2", "lora_B"), ("prefix", "bart", ".mlp.")])
def test_two_processes_match_one(bases, tmp_path, method, arch, marker):
    base = bases[arch]
    common = {"steps": 3, "n_train": 20, "n_test": 2, "eval_every": 3, "device": "cpu"}
    single = train(method, base, "table2text", tmp_path / "one", batch_size=4, **common)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "deepnotes.cli", "peft", "train", "--method", method, "--model", str(base),
            "--task", "table2text", "--out", str(tmp_path / "two"), "--steps", "3", "--batch-size", "2",
            "--n-train", "20", "--n-test", "2",
            "--eval-every", "3", "--device", "cpu"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count(f"{method} on table2text") == 1  # rank 0 reports, once
    one, _ = load_checkpoint(tmp_path / "one" / "checkpoint.safetensors")
    two, _ = load_checkpoint(tmp_path / "two" / "checkpoint.safetensors")
    # the engine's checkpoint keeps the task's model tensors, for peft the trained ones only
    assert one["model"].keys() == two["model"].keys() and any(marker in k for k in one["model"])
    for k, v in one["model"].items():
        assert torch.allclose(v, two["model"][k], atol=1e-5), k
    # the shares differ in token count: the loss is the global batch's token mean, as in one process
    multi = json.loads((tmp_path / "two" / "metrics.json").read_text())
    ref = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert abs(multi[0]["train_loss"] - ref[0]["train_loss"]) < 1e-5
    results = json.loads((tmp_path / "two" / "results.json").read_text())
    assert abs(results["test_loss"] - single["test_loss"]) < 1e-4
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2
    # each process draws its own dropout masks (one seed everywhere gave them all the same) and the checkpoint
    # keeps every process's stream for a resume
    ranks = two["rng_ranks"]
    assert sorted(ranks) == ["0", "1"] and not torch.equal(ranks["0"]["cpu"], ranks["1"]["cpu"])
    # rank 0 keeps the stream the seed started: the one a single process stores
    assert torch.equal(ranks["0"]["cpu"], one["rng_ranks"]["0"]["cpu"])
