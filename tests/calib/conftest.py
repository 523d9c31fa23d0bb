"""Session fixtures: one small rendered four-way project and its full pipeline run, and a small ChArUco rig
whose cameras see part of the board (shared by the tests)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from deepnotes.calib.cli import app
from deepnotes.calib.config import Board, load_config
from deepnotes.calib.pipeline import run_all
from deepnotes.calib.synthetic import _background, synthetic_rig, write_dataset


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


TINY_CHARUCO = Board(cols=8, rows=6, square_size=0.09, type="charuco", marker_size=0.07,
                     dictionary="DICT_4X4_50")


@pytest.fixture(scope="session")
def charuco_rig():
    """3 cameras 0.3 m apart, 320x240 views, 8 poses of an 8x6-square ChArUco board (9 cm squares) 0.5-1.2 m
    away, every camera seeing 40-80% of it in every frame."""
    return synthetic_rig(3, 8, (320, 240), seed=1, depth=(0.5, 1.2), board=TINY_CHARUCO, visible=(0.4, 0.8))


@pytest.fixture(scope="session")
def charuco_project(tmp_path_factory, charuco_rig):
    """The rig rendered as per-camera folders, plus four frames only cam0 has: blank, unreadable, blurred
    and board-less (each must be skipped with its reason)."""
    folder = tmp_path_factory.mktemp("charuco_project")
    cfg_path = write_dataset(folder, charuco_rig, mosaic=False, seed=1, ss=2)
    cam0 = folder / "images" / "cam0"
    rng = np.random.default_rng(0)
    blank = np.clip(40 + rng.normal(0, 1.5, (240, 320)), 0, 255)  # a dark frame: sensor noise only
    cv2.imwrite(str(cam0 / "extra_blank.png"), blank.astype(np.uint8))
    (cam0 / "extra_unreadable.png").write_bytes(b"not a png")
    view = cv2.imread(str(cam0 / "frame_0000.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(cam0 / "extra_blurred.png"), cv2.GaussianBlur(view, (0, 0), 6))
    no_board = _background(7, (320, 240), 7) + rng.normal(0, 2.0, (240, 320))  # sensor noise: not "blurred"
    cv2.imwrite(str(cam0 / "extra_no_board.png"), np.clip(no_board, 0, 255).astype(np.uint8))
    return cfg_path


@pytest.fixture(scope="session")
def charuco_out(tmp_path_factory, charuco_project):
    """`deepnotes calib run` on the ChArUco project, with what it printed."""
    out = tmp_path_factory.mktemp("charuco_out")
    res = CliRunner().invoke(app, ["run", str(charuco_project), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output
