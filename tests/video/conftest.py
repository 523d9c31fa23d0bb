"""Shared tiny synthetic data for the video tests (session-scoped: written once)."""

from __future__ import annotations

import shutil

import pytest
import torch

from deepnotes.video.data.synth import synth_dataset


@pytest.fixture(scope="session")
def motion_data(tmp_path_factory):
    """8 classes x 2 training and 1 validation videos, 8 frames of 16x16."""
    return synth_dataset("motion", tmp_path_factory.mktemp("motion"), 2, 1, frames=8, size=16, seed=0)


@pytest.fixture(scope="session")
def data_with_bad_video(motion_data, tmp_path_factory):
    """The motion lists with one training and one validation video replaced by a corrupt file."""
    root = motion_data["train"].parent
    bad = root / "videos" / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not h264" * 10)
    out = tmp_path_factory.mktemp("lists")
    for split in ("train", "val"):
        lines = (root / f"{split}.txt").read_text().splitlines()
        lines[3] = "videos/corrupt.mp4 3"
        (out / f"{split}.txt").write_text("\n".join(lines) + "\n")
    shutil.copy(root / "classes.txt", out / "classes.txt")
    return {"train": out / "train.txt", "val": out / "val.txt", "root": root, "bad": bad}


@pytest.fixture(scope="session")
def tiny_train_kwargs():
    """Model and loop settings small enough for a 2-core CI machine."""
    return {"segments": 4, "input_size": 16, "depth": 10, "width": 4, "stem_stride": 1, "batch_size": 4,
            "workers": 0, "cache": True, "crop": "center", "lr": 1e-3, "device": "cpu", "dropout": 0.0}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; on a shared CPU extra threads mostly wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
