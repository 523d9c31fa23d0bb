"""`deepnotes calib ...`: init, split, detect, intrinsics, rig, stereo, export, run, synth (thin wrappers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Multi-camera calibration: init, split, detect, intrinsics, rig, stereo, run.")


def _call(fn: Callable, *args):
    from deepnotes.calib.config import CalibError

    try:
        return fn(*args)
    except (CalibError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _step(name: str, config: Path, out: Path) -> None:
    from deepnotes.calib import pipeline
    from deepnotes.calib.config import load_config

    cfg = _call(load_config, config)
    out.mkdir(parents=True, exist_ok=True)
    result = _call(getattr(pipeline, f"step_{name}" if name != "run" else "run_all"), cfg, out)
    typer.echo(f"{name}: done -> {result if isinstance(result, Path) else out}")


CONFIG = typer.Argument(..., help="calibration config (YAML), see `deepnotes calib init`")
OUT = typer.Option(Path("runs/calib"), "--out", help="output folder")


@app.command()
def init(directory: Path = typer.Argument(..., help="folder to write calib.yaml into")) -> None:
    """Write a commented template config to DIR/calib.yaml."""
    from deepnotes.calib.config import TEMPLATE
    from deepnotes.core.checkpoint import atomic_write_text

    path = directory / "calib.yaml"
    if path.exists():
        typer.echo(f"error: {path} exists; remove it or pick another folder", err=True)
        raise typer.Exit(2)
    atomic_write_text(path, TEMPLATE)
    typer.echo(f"wrote {path}")


@app.command()
def run(config: Path = CONFIG, out: Path = OUT) -> None:
    """Every step: split, detect, intrinsics, rig, stereo, then calibration.yaml, camchain.yaml, report.html."""
    _step("run", config, out)


@app.command()
def split(config: Path = CONFIG, out: Path = OUT) -> None:
    """Cut four-way mosaics / videos into per-camera frames (OUT/frames)."""
    _step("split", config, out)


@app.command()
def detect(config: Path = CONFIG, out: Path = OUT) -> None:
    """Detect chessboard corners on all cores (cached in OUT/detections)."""
    _step("detect", config, out)


@app.command()
def intrinsics(config: Path = CONFIG, out: Path = OUT) -> None:
    """Per-camera intrinsics with outlier-view rejection (OUT/intrinsics.json)."""
    _step("intrinsics", config, out)


@app.command()
def rig(config: Path = CONFIG, out: Path = OUT) -> None:
    """Spanning-tree initialisation and joint bundle adjustment of each rig (OUT/rig_<name>.json)."""
    _step("rig", config, out)


@app.command()
def stereo(config: Path = CONFIG, out: Path = OUT) -> None:
    """Stereo pairs: extrinsics, rectification, vertical-disparity check (OUT/stereo.json)."""
    _step("stereo", config, out)


@app.command()
def export(config: Path = CONFIG, out: Path = OUT) -> None:
    """Write calibration.yaml, camchain.yaml (Kalibr) and report.html from the steps' results."""
    _step("export", config, out)


@app.command()
def synth(
    directory: Path = typer.Argument(..., help="folder for the synthetic project"),
    cameras: int = typer.Option(4, "--cameras", min=1), frames: int = typer.Option(40, "--frames", min=1),
    width: int = typer.Option(640, "--width", min=64), height: int = typer.Option(480, "--height", min=64),
    mosaic: bool = typer.Option(True, "--mosaic/--folders"), seed: int = typer.Option(0, "--seed"),
) -> None:
    """Render a synthetic rig (ground truth in DIR/truth.json) and its config DIR/calib.yaml."""
    from deepnotes.calib.synthetic import synthetic_rig, write_dataset

    rig_ = synthetic_rig(cameras, frames, (width, height), seed)
    typer.echo(f"wrote {write_dataset(directory, rig_, mosaic=mosaic, seed=seed)}")
