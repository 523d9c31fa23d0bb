"""`deepnotes calib ...`: init, split, detect, intrinsics, rig, stereo, export, run, synth (thin wrappers)."""

from __future__ import annotations

from pathlib import Path

import typer

from deepnotes.calib import pipeline
from deepnotes.calib.config import TEMPLATE, load_config
from deepnotes.calib.synthetic import synthetic_rig, write_dataset
from deepnotes.core.checkpoint import atomic_write_text
from deepnotes.core.cli import deprecated, fail, size_option, user_errors

app = typer.Typer(no_args_is_help=True,
                  help="Multi-camera calibration: init, split, detect, intrinsics, rig, stereo, run.")

MIN_SIDE = 64  # pixels: a smaller synthetic view cannot hold a detectable board


def _step(name: str, config: Path, out: Path, workers: int | None) -> None:
    """Run one pipeline step (or ``run``: all of them); user errors (CalibError is a ValueError) exit 2."""
    with user_errors():
        cfg = load_config(config)
        if workers is not None:
            cfg.detect.workers = workers
        out.mkdir(parents=True, exist_ok=True)
        result = getattr(pipeline, f"step_{name}" if name != "run" else "run_all")(cfg, out)
    typer.echo(f"{name}: done -> {result if isinstance(result, Path) else out}")


CONFIG = typer.Argument(..., help="calibration config (YAML), see `deepnotes calib init`")
OUT = typer.Option(Path("runs/calib"), "--out", help="output folder")
# every step may detect (served from the cache when nothing changed), so every step takes --workers
WORKERS = typer.Option(None, "--workers", min=0, show_default="the config's detect.workers; all cores",
                       help="detection threads; 0 = one image after the other in this process")


@app.command()
def init(directory: Path = typer.Argument(..., help="folder to write calib.yaml into")) -> None:
    """Write a commented template config to DIR/calib.yaml."""
    path = directory / "calib.yaml"
    if path.exists():
        fail(f"{path} exists; remove it or pick another folder")
    with user_errors():
        atomic_write_text(path, TEMPLATE)
    typer.echo(f"wrote {path}")


@app.command()
def run(config: Path = CONFIG, out: Path = OUT, workers: int | None = WORKERS) -> None:
    """Every step: split, detect, intrinsics, rig, stereo, then calibration.yaml, camchain.yaml and
    report.html."""
    _step("run", config, out, workers)


@app.command()
def split(config: Path = CONFIG, out: Path = OUT) -> None:
    """Cut four-way mosaics / videos into per-camera frames (OUT/frames)."""
    _step("split", config, out, None)


@app.command()
def detect(config: Path = CONFIG, out: Path = OUT, workers: int | None = WORKERS) -> None:
    """Detect chessboard corners on all cores (cached in OUT/detections)."""
    _step("detect", config, out, workers)


@app.command()
def intrinsics(config: Path = CONFIG, out: Path = OUT, workers: int | None = WORKERS) -> None:
    """Per-camera intrinsics with outlier-view rejection (OUT/intrinsics.json)."""
    _step("intrinsics", config, out, workers)


@app.command()
def rig(config: Path = CONFIG, out: Path = OUT, workers: int | None = WORKERS) -> None:
    """Spanning-tree initialisation and joint bundle adjustment of each rig (OUT/rig_<name>.json)."""
    _step("rig", config, out, workers)


@app.command()
def stereo(config: Path = CONFIG, out: Path = OUT, workers: int | None = WORKERS) -> None:
    """Stereo pairs: extrinsics, rectification, vertical-disparity check (OUT/stereo.json)."""
    _step("stereo", config, out, workers)


@app.command()
def export(config: Path = CONFIG, out: Path = OUT, workers: int | None = WORKERS) -> None:
    """Write calibration.yaml, camchain.yaml (Kalibr) and report.html from the steps' results."""
    _step("export", config, out, workers)


def _synth_size(size: str, width: int | None, height: int | None) -> tuple[int, int]:
    """(H, W) from --size, with the deprecated --width / --height replacing one side each."""
    h, w = size_option(size, "--size")
    if width is not None or height is not None:
        deprecated("--width/--height", "--size H,W")
        h, w = height if height is not None else h, width if width is not None else w
    if min(h, w) < MIN_SIDE:
        raise typer.BadParameter(f"each side must be at least {MIN_SIDE} pixels, got {h},{w}",
                                 param_hint="--size")
    return h, w


@app.command()
def synth(
    directory: Path = typer.Argument(..., help="folder for the synthetic project"),
    cameras: int = typer.Option(4, "--cameras", min=1), frames: int = typer.Option(40, "--frames", min=1),
    size: str = typer.Option("480,640", "--size", help="image size H,W of every camera (one number: square)"),
    width: int | None = typer.Option(None, "--width", min=MIN_SIDE, hidden=True,
                                     help="deprecated: use --size H,W"),
    height: int | None = typer.Option(None, "--height", min=MIN_SIDE, hidden=True,
                                      help="deprecated: use --size H,W"),
    mosaic: bool = typer.Option(True, "--mosaic/--folders"), seed: int = typer.Option(0, "--seed"),
) -> None:
    """Render a synthetic rig (ground truth in DIR/truth.json) and its config DIR/calib.yaml."""
    h, w = _synth_size(size, width, height)
    with user_errors():
        rig_ = synthetic_rig(cameras, frames, (w, h), seed)  # OpenCV's (width, height) order
        typer.echo(f"wrote {write_dataset(directory, rig_, mosaic=mosaic, seed=seed)}")
