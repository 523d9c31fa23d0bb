"""Shared fixtures: one tiny synthetic dataset per session; single-threaded torch (tiny nets run faster
so)."""

from __future__ import annotations

import pytest
import torch

from deepnotes.pose.data.synth import write_dataset


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """train/val COCO files (64x64 images, 1-2 figures each) with images/ beside them."""
    root = tmp_path_factory.mktemp("pose_data")
    train = write_dataset(root / "train", 24, seed=0, size=(64, 64))
    val = write_dataset(root / "val", 8, seed=1, size=(64, 64))
    return {"root": root, "train": train, "val": val}
