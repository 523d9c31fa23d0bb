"""Session fixtures: one small rendered four-way project and its full pipeline run (shared by the tests)."""

from __future__ import annotations

import pytest

from deepnotes.calib.config import Board, load_config
from deepnotes.calib.pipeline import run_all
from deepnotes.calib.synthetic import synthetic_rig, write_dataset


@pytest.fixture(scope="session")
def small_rig():
    """4 cameras 0.15 m apart, 320x240 views, 12 poses of a 7x5 board with 5 cm squares 0.9-1.5 m away."""
    return synthetic_rig(4, 12, (320, 240), seed=3, depth=(0.9, 1.5),
                         board=Board(cols=7, rows=5, square_size=0.05), baseline=0.15)


@pytest.fixture(scope="session")
def project(tmp_path_factory, small_rig):
    folder = tmp_path_factory.mktemp("calib_project")
    cfg_path = write_dataset(folder, small_rig, mosaic=True, seed=3, ss=2)
    return cfg_path


@pytest.fixture(scope="session")
def pipeline_out(tmp_path_factory, project):
    out = tmp_path_factory.mktemp("calib_out")
    cfg = load_config(project)
    run_all(cfg, out)
    return out
