"""`calib run` on a rig whose cameras see part of a ChArUco board; what a run says about skipped views; the
Kalibr export's radtan refit."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from deepnotes.calib.cli import app
from deepnotes.calib.config import Board, CalibError, load_config
from deepnotes.calib.detect import Detection
from deepnotes.calib.experiments import truth_errors
from deepnotes.calib.intrinsics import IntrinsicsResult
from deepnotes.calib.io_yaml import kalibr_camchain, radtan_refit, read_calibration
from deepnotes.calib.pipeline import run_all, summary_lines, view_summary
from deepnotes.calib.synthetic import load_truth, synthetic_rig, write_dataset

EXTRA = {"extra_blank.png": "blank image", "extra_unreadable.png": "unreadable image",
         "extra_blurred.png": "blurred", "extra_no_board.png": "no board"}


def test_run_prints_views_used_and_why_each_other_was_skipped(charuco_out):
    out, printed = charuco_out
    lines = printed.splitlines()
    assert "cam0: 8/12 views used" in lines and "cam1: 8/8 views used" in lines
    for name, reason in EXTRA.items():
        assert any(line.startswith(f"  skipped {name}: {reason}") for line in lines), (name, printed)
    views = json.loads((out / "views.json").read_text())
    assert views["cam0"]["used"] == 8 and views["cam0"]["total"] == 12
    assert {s["file"] for s in views["cam0"]["skipped"]} == set(EXTRA)


def test_report_lists_skipped_views_and_draws_corner_ids(charuco_out):
    out, _ = charuco_out
    report = (out / "report.html").read_text()
    for name, reason in EXTRA.items():
        assert f"<td>{name}</td><td>{reason}" in report
    assert report.count("data:image/jpeg") == 3 and "corners with their ids" in report
    assert "8 of 12 views used, 4 skipped" in report
    overlay = cv2.imread(str(out / "overlays" / "cam0" / "frame_0000.jpg"))
    assert overlay is not None and overlay.shape == (240, 320, 3)


def test_partial_views_calibrate_the_rig(charuco_out, charuco_project):
    out, _ = charuco_out
    calib = read_calibration(out / "calibration.yaml")
    errs = truth_errors(calib, load_truth(charuco_project.parent / "truth.json"))
    # 3 cameras, 8 frames of 320x240, 40-80% of the board per view
    for cam, e in errs.items():
        assert e["focal_pct"] < 1.0 and e["pp_px"] < 4.0, (cam, e)
        if "rotation_deg" in e:
            assert e["rotation_deg"] < 0.5 and e["translation_pct"] < 2.0, (cam, e)
    assert calib["stereo"][0]["rectified_vertical_error"] < 0.5
    dets = json.loads((out / "detections" / "cam1.json").read_text())["entries"]
    ids = [d["ids"] for d in dets.values() if d["found"]]
    assert all(len(i) < 35 for i in ids)  # every view holds part of the 35 corners


def test_the_same_rig_as_a_chessboard_loses_every_view(charuco_rig, tmp_path):
    # the chessboard of the ChArUco rig's squares: 7x5 inner corners; the same seed gives the same poses
    board = Board(cols=7, rows=5, square_size=0.09)
    rig = synthetic_rig(3, 8, (320, 240), seed=1, depth=(0.5, 1.2), board=board, visible=(0.4, 0.8))
    for a, b in zip(rig.board_poses, charuco_rig.board_poses, strict=True):
        np.testing.assert_allclose(a[0], b[0])
    cfg = load_config(write_dataset(tmp_path / "data", rig, mosaic=False, seed=1, ss=1))
    with pytest.raises(CalibError, match=r"camera cam0: only 0 of 8 images have a usable 7x5 board"):
        run_all(cfg, tmp_path / "out")


def _det(frame: str, found: bool, reason: str = "") -> Detection:
    return Detection(frame, f"/data/cam0/{frame}.png", found, (64, 48), [[1.0, 2.0]] if found else None,
                     reason=reason)


def test_outliers_are_named_by_the_step_that_rejected_them(charuco_project):
    cfg = load_config(charuco_project)
    dets = {"cam0": [_det("a", True), _det("b", True), _det("c", False, "no board (3 corners seen)")]}
    intr = {"cam0": IntrinsicsResult("cam0", "pinhole", (64, 48), np.eye(3), np.zeros(5), 0.1, {"a": 0.1},
                                     {"b": 2.5})}
    cfg.rigs = []
    summary = view_summary(cfg, dets, intr)
    assert summary["cam0"]["used"] == 1 and summary["cam0"]["total"] == 3
    reasons = {s["file"]: s["reason"] for s in summary["cam0"]["skipped"]}
    assert reasons == {"b.png": "rejected as outlier (RMS 2.50 px, far above the camera's other views)",
                       "c.png": "no board (3 corners seen)"}
    assert summary_lines(summary)[:3] == [
        "cam0: 1/3 views used",
        "  skipped b.png: rejected as outlier (RMS 2.50 px, far above the camera's other views)",
        "  skipped c.png: no board (3 corners seen)"]


K = np.array([[500.0, 0, 320], [0, 502, 240], [0, 0, 1]])


@pytest.mark.parametrize("model, dist", [
    ("pinhole", np.array([-0.28, 0.12, 1e-3, -5e-4, -0.04])),
    ("pinhole_rational", np.array([-0.25, 0.08, 1e-3, -5e-4, 0.01, 0.02, -0.01, 0.005])),
])
def test_kalibr_radtan_is_refitted_not_truncated(model, dist, caplog):
    rng = np.random.default_rng(0)
    pixels = np.c_[rng.uniform(20, 620, 400), rng.uniform(20, 460, 400)]
    coeffs, e = radtan_refit(K, dist, model, pixels)
    # reference: OpenCV projects the rays with the 4 refitted coefficients onto the original pixels
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
    rays = cv2.undistortPoints(pixels.reshape(-1, 1, 2), K, dist, None, None, None, crit).reshape(-1, 2)
    pts = np.c_[rays, np.ones(len(rays))]
    ref = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), K, coeffs)[0].reshape(-1, 2)
    err = np.linalg.norm(ref - pixels, axis=1)
    assert abs(err.max() - e["max_px"]) < 1e-6
    assert e["max_px"] < 0.25 * e["dropped_max_px"] and e["rms_px"] < 0.25 * e["dropped_rms_px"]
    cam = {"name": "c", "model": model, "K": K, "dist": dist, "image_size": [640, 480], "R": np.eye(3),
           "T": np.zeros(3), "points": pixels}
    notes: list[str] = []
    chain = yaml.safe_load(kalibr_camchain([cam], notes))
    np.testing.assert_allclose(chain["cam0"]["distortion_coeffs"], coeffs)
    assert len(notes) == 1 and "refitted on 400 points" in notes[0] and "dropping k3" in notes[0]


def test_kalibr_keeps_coefficients_when_nothing_is_dropped():
    cam = {"name": "c", "model": "pinhole", "K": K, "dist": np.array([-0.2, 0.05, 1e-3, 2e-3, 0.0]),
           "image_size": [640, 480], "R": np.eye(3), "T": np.zeros(3)}
    notes: list[str] = []
    chain = yaml.safe_load(kalibr_camchain([cam], notes))
    assert chain["cam0"]["distortion_coeffs"] == [-0.2, 0.05, 1e-3, 2e-3] and notes == []


def test_export_warns_with_the_refit_error(charuco_out, charuco_project, caplog):
    out, _ = charuco_out
    with caplog.at_level(logging.WARNING, logger="deepnotes.calib"):
        res = CliRunner().invoke(app, ["export", str(charuco_project), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Kalibr's radtan has no k3" in caplog.text and "px RMS" in caplog.text
    assert "Kalibr&#x27;s radtan has no k3" in (out / "report.html").read_text()


def test_compare_prints_errors_and_goals(charuco_out, charuco_project):
    out, _ = charuco_out
    res = CliRunner().invoke(app, ["compare", str(out / "calibration.yaml"),
                                   str(charuco_project.parent / "truth.json")])
    assert res.exit_code == 0, res.output
    header = res.output.splitlines()[0].split()
    assert header == ["camera", "focal", "%", "pp", "px", "rot", "deg", "trans", "%"]
    assert "worst" in res.output and "goals: focal_pct" in res.output
