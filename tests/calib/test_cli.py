"""The calib CLI's vocabulary: --size H,W (and the deprecated --width/--height), --workers (0: in process)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from deepnotes.calib import detect as detect_mod
from deepnotes.calib import pipeline
from deepnotes.calib.cli import app
from deepnotes.calib.config import TEMPLATE, ConfigError, load_config, parse_config
from deepnotes.calib.frames import split_sources


def _flat(text: str) -> str:
    """Usage errors come in a box that wraps lines: compare words only."""
    return " ".join(text.replace("│", " ").split())


def _truth_size(folder) -> list[int]:
    return json.loads((folder / "truth.json").read_text())["cameras"][0]["image_size"]


def test_synth_size_is_h_w_and_width_height_still_work_with_a_warning(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["synth", str(tmp_path / "a"), "--cameras", "1", "--frames", "1",
                              "--size", "72,96"])
    assert res.exit_code == 0, res.output
    assert _truth_size(tmp_path / "a") == [96, 72]  # stored as OpenCV's (width, height)
    assert "deprecated" not in res.stderr
    res = runner.invoke(app, ["synth", str(tmp_path / "b"), "--cameras", "1", "--frames", "1",
                              "--width", "96", "--height", "72"])
    assert res.exit_code == 0, res.output
    assert "--width/--height is deprecated" in res.stderr and "--size H,W" in res.stderr
    assert _truth_size(tmp_path / "b") == [96, 72]
    # one side given the old way replaces that side of --size only
    res = runner.invoke(app, ["synth", str(tmp_path / "c"), "--cameras", "1", "--frames", "1", "--size", "80",
                              "--width", "96"])
    assert res.exit_code == 0, res.output
    assert _truth_size(tmp_path / "c") == [96, 80]


def test_synth_help_shows_size_not_the_deprecated_flags():
    res = CliRunner().invoke(app, ["synth", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "--size" in res.output
    assert "--width" not in res.output and "--height" not in res.output


@pytest.mark.parametrize("size", ["32", "72,32", "72,96,3", "big"])
def test_synth_refuses_bad_sizes_naming_the_flag(tmp_path, size):
    res = CliRunner().invoke(app, ["synth", str(tmp_path / "p"), "--size", size])
    assert res.exit_code == 2 and "--size" in _flat(res.output)
    assert not (tmp_path / "p").exists()


def test_workers_flag_overrides_the_config_and_is_range_checked(project, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(pipeline, "step_detect", lambda cfg, out: seen.append(cfg.detect.workers))
    runner = CliRunner()
    assert runner.invoke(app, ["detect", str(project), "--out", str(tmp_path)]).exit_code == 0
    res = runner.invoke(app, ["detect", str(project), "--out", str(tmp_path), "--workers", "0"])
    assert res.exit_code == 0
    assert seen == [None, 0]  # the synthetic project's config leaves workers out: all cores
    res = runner.invoke(app, ["detect", str(project), "--out", str(tmp_path), "--workers", "-1"])
    assert res.exit_code == 2 and "--workers" in _flat(res.output) and len(seen) == 2


class _NoPool:
    def __init__(self, *args, **kwargs):
        raise AssertionError("workers=0 must detect in this process, without a pool")


def test_workers_zero_detects_in_this_process_and_none_uses_every_core(tmp_path, monkeypatch):
    frames = [{"frame": str(i), "path": str(tmp_path / f"missing{i}.png")} for i in range(3)]
    monkeypatch.setattr(detect_mod, "ThreadPoolExecutor", _NoPool)
    dets = detect_mod.detect_camera(frames, 7, 5, "classic", "adaptive", 0.0, workers=0)
    assert [d.reason for d in dets] == ["unreadable image"] * 3
    pools = []

    def counted_pool(max_workers):
        pools.append(max_workers)
        return ThreadPoolExecutor(max_workers=max_workers)

    monkeypatch.setattr(detect_mod.os, "cpu_count", lambda: 5)
    monkeypatch.setattr(detect_mod, "ThreadPoolExecutor", counted_pool)
    detect_mod.detect_camera(frames, 7, 5, "classic", "adaptive", 0.0)
    detect_mod.detect_camera(frames, 7, 5, "classic", "adaptive", 0.0, workers=2)
    assert pools == [3, 2]  # all cores, at most one thread per image; then the number asked for


def test_config_workers_default_all_cores_zero_in_process_negative_refused(caplog):
    raw = yaml.safe_load(TEMPLATE)
    assert parse_config(raw, check_files=False).detect.workers is None
    raw["detect"]["workers"] = 0
    with caplog.at_level("WARNING", logger="deepnotes.calib"):
        assert parse_config(raw, check_files=False).detect.workers == 0
    assert "meant all cores before this release" in caplog.text  # an old config's 0 changed meaning
    raw["detect"]["workers"] = -2
    with pytest.raises(ConfigError, match="detect.workers must be >= 0"):
        parse_config(raw, check_files=False)


def test_synth_charuco_writes_a_partial_view_rig(tmp_path):
    res = CliRunner().invoke(app, ["synth", str(tmp_path / "c"), "--board", "charuco", "--cameras", "2",
                                   "--frames", "2", "--size", "240,320", "--folders"])
    assert res.exit_code == 0, res.output
    cfg = yaml.safe_load((tmp_path / "c" / "calib.yaml").read_text())
    assert cfg["board"] == {"cols": 12, "rows": 9, "square_size": 0.06, "type": "charuco",
                            "marker_size": 0.045, "dictionary": "DICT_5X5_100"}
    assert len(list((tmp_path / "c" / "images" / "cam1").glob("*.png"))) == 2


@pytest.mark.parametrize("args, flag", [(["--visible", "0.8,0.4"], "--visible"),
                                        (["--visible", "half"], "--visible"),
                                        (["--board", "aruco"], "--board")])
def test_synth_refuses_bad_board_choices(tmp_path, args, flag):
    res = CliRunner().invoke(app, ["synth", str(tmp_path / "p"), "--frames", "1", *args])
    assert res.exit_code == 2 and flag in _flat(res.output)
    assert not (tmp_path / "p").exists()


def test_fast_search_finds_most_boards_the_thorough_one_finds(project, tmp_path):
    # the pipeline's default chessboard search against OpenCV's full adaptive search on the same views: on
    # these 320x240 views with squares of 7-12 px it misses 3 of 37 (small boards in uneven light)
    cfg = load_config(project)
    index = split_sources(cfg, tmp_path)
    b = cfg.board
    n_fast = n_thorough = 0
    for frames in index.values():
        fast = detect_mod.detect_camera(frames, b.cols, b.rows, "classic", "adaptive", 0.0, workers=0,
                                        search="fast")
        thorough = detect_mod.detect_camera(frames, b.cols, b.rows, "classic", "adaptive", 0.0, workers=0,
                                            search="thorough")
        for f, t in zip(fast, thorough, strict=True):
            assert t.found or not f.found  # nothing the full search rejects
            if f.found:  # both refined at full size by the same cornerSubPix windows
                assert np.abs(np.array(f.corners) - np.array(t.corners)).max() < 0.05
            elif t.found:
                assert "may need detect.search: thorough" in f.reason  # says how to get it back
        n_fast += sum(d.found for d in fast)
        n_thorough += sum(d.found for d in thorough)
    assert n_thorough == 37 and n_fast >= 0.9 * n_thorough
