from __future__ import annotations

import math

import pytest
import yaml

from deepnotes.calib.config import TEMPLATE, ConfigError, load_config, parse_config


def _raw():
    return yaml.safe_load(TEMPLATE)


def test_template_parses():
    cfg = parse_config(_raw(), check_files=False)
    assert cfg.board.cols == 9 and [c.name for c in cfg.cameras] == ["cam0", "cam1", "cam2", "cam3"]
    assert cfg.sources[0].layout == [2, 2] and cfg.rigs[0].reference == "cam0"


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["board"].update(colz=3), "unknown key(s) ['colz']"),
        (lambda r: r["board"].update(cols="nine"), "board.cols must be an integer"),
        (lambda r: r["board"].pop("square_size"), "board.square_size is missing"),
        (lambda r: r.update(extra=1), "unknown top-level key(s) ['extra']"),
        (lambda r: r["cameras"][0].update(model="kannala"), "cameras[0].model"),
        (lambda r: r["sources"][0].update(cameras=["cam0", "cam1"]), "2 names for 4 views"),
        (lambda r: r["rigs"][0].update(reference="camX"), "rigs[0].reference"),
        (lambda r: r["stereo"][0].update(left="nope"), "stereo[0].left"),
        (lambda r: r["cameras"][0].update(name="../../escaped"),
         "cameras[0].name: '../../escaped' is not a valid"),
        (lambda r: r["cameras"][0].update(name=".."), "cameras[0].name: '..' is not a valid"),
        (lambda r: r["sources"].append({"type": "video", "path": "more.mp4", "camera": "cam2"}),
         "sources[1]: camera 'cam2' is already fed by sources[0]"),
        (lambda r: r.update(frames={"stride": 0}), "frames.stride must be >= 1"),
        (lambda r: r["cameras"][0].update(name="Null"), "cameras[0].name: 'Null' reads back as no name"),
        (lambda r: r["stereo"][0].update(right=r["stereo"][0]["left"]), "stereo[0]: left and right are both"),
        (lambda r: r["rigs"][0].update(cameras=["cam0", "cam1", "cam1"]),
         "rigs[0].cameras: ['cam0', 'cam1', 'cam1'] lists"),
        (lambda r: r.update(frames={"duplicate_threshold": -1.0}), "frames.duplicate_threshold must be >= 0"),
    ],
)
def test_bad_configs_name_the_key(edit, message):
    raw = _raw()
    edit(raw)
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, src="calib.yaml", check_files=False)
    assert message in str(exc.value)


def test_missing_source_file_and_bad_yaml(tmp_path):
    (tmp_path / "calib.yaml").write_text(TEMPLATE)
    with pytest.raises(ConfigError, match="fourway.mp4 does not exist"):
        load_config(tmp_path / "calib.yaml")
    (tmp_path / "bad.yaml").write_text("board: [1,\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("cameras", [3, 5])
def test_synthetic_configs_with_empty_grid_cells_load(tmp_path, cameras):
    # 3 cameras in a 2x2 mosaic: the config named 3 cameras for 4 cells and its own loader refused it
    from deepnotes.calib.synthetic import synthetic_rig, write_dataset

    rig = synthetic_rig(cameras, 2, (96, 72), seed=0)
    cfg = load_config(write_dataset(tmp_path, rig, ss=1))
    (source,) = cfg.sources
    assert source.cameras == [c.name for c in cfg.cameras] and len(source.crops) == cameras
    ncol = math.ceil(math.sqrt(cameras))
    cell = [(cameras - 1) % ncol * 96, (cameras - 1) // ncol * 72, 96, 72]
    assert source.crops[-1] == cell  # cells are row-major
