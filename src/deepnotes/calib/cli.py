"""`deepnotes calib ...`: init, split, detect, intrinsics, rig, stereo, export, run, synth, compare (thin
wrappers)."""

from __future__ import annotations

from pathlib import Path

import typer

from deepnotes.calib import pipeline
from deepnotes.calib.config import BOARD_TYPES, TEMPLATE, load_config
from deepnotes.calib.experiments import GOALS, truth_errors
from deepnotes.calib.io_yaml import read_calibration
from deepnotes.calib.synthetic import (
    CHARUCO_BOARD,
    PARTIAL_CHESSBOARD,
    PARTIAL_DEPTH,
    load_truth,
    synthetic_rig,
    write_dataset,
)
from deepnotes.core.checkpoint import atomic_write_text
from deepnotes.core.cli import deprecated, fail, size_option, user_errors
from deepnotes.core.registry import choice_value, str_enum

app = typer.Typer(no_args_is_help=True,
                  help="Multi-camera calibration: init, split, detect, intrinsics, rig, stereo, run; "
                       "synth and compare for rendered rigs with known truth.")

MIN_SIDE = 64  # pixels: a smaller synthetic view cannot hold a detectable board
BoardType = str_enum("BoardType", BOARD_TYPES)


def _step(name: str, config: Path, out: Path, workers: int | None) -> None:
    """Run one pipeline step (or ``run``: all of them); user errors (CalibError is a ValueError) exit 2."""
    with user_errors():
        cfg = load_config(config)
        if workers is not None:
            cfg.detect.workers = workers
        out.mkdir(parents=True, exist_ok=True)
        result = getattr(pipeline, f"step_{name}" if name != "run" else "run_all")(cfg, out)
        if name in ("run", "intrinsics"):  # which views counted, and why each other one did not
            dets = pipeline.step_detect(cfg, out)  # from the cache
            rigs = pipeline.load_rigs(cfg, out) if name == "run" else {}
            summary = pipeline.view_summary(cfg, dets, pipeline.load_intrinsics(out), rigs)
            for line in pipeline.summary_lines(summary):
                typer.echo(line)
    typer.echo(f"{name}: done -> {result if isinstance(result, Path) else out}")


CONFIG = typer.Argument(..., help="calibration config (YAML), see `deepnotes calib init`")
OUT = typer.Option(Path("runs/calib"), "--out", help="output folder")
# every step may detect (served from the cache when nothing changed), so every step takes --workers
WORKERS = typer.Option(None, "--workers", min=0, show_default="the config's detect.workers; all cores",
                       help="detection threads (the intrinsics step calibrates as many cameras at once); "
                            "0 = one after the other in this process")


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


@app.command()
def compare(
    calibration: Path = typer.Argument(..., help="OUT/calibration.yaml of a run"),
    truth: Path = typer.Argument(..., help="DIR/truth.json written by `deepnotes calib synth`"),
) -> None:
    """Errors of a calibration against a synthetic rig's ground truth, per camera and at worst."""
    with user_errors():
        errs = truth_errors(read_calibration(calibration), load_truth(truth))
    keys = list(GOALS)
    typer.echo(f"{'camera':<10}{'focal %':>10}{'pp px':>9}{'rot deg':>10}{'trans %':>10}")
    for cam, e in errs.items():
        typer.echo(f"{cam:<10}" + "".join(f"{e[k]:>{w}.4f}" if k in e else f"{'-':>{w}}"
                                          for k, w in zip(keys, (10, 9, 10, 10), strict=True)))
    worst = {k: max((e[k] for e in errs.values() if k in e), default=0.0) for k in keys}
    typer.echo(f"{'worst':<10}" + "".join(f"{worst[k]:>{w}.4f}" for k, w in zip(keys, (10, 9, 10, 10),
                                                                                 strict=True)))
    met = [f"{k} {'met' if worst[k] <= g else 'MISSED'} (goal {g})" for k, g in GOALS.items()]
    typer.echo("goals: " + ", ".join(met))


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
    board: BoardType = typer.Option(BoardType("chessboard"), "--board",
                                    help="chessboard, or charuco: views that show part of the board"),
    visible: str | None = typer.Option(
        None, "--visible", show_default="0.4,0.8 for charuco; whole boards for a chessboard",
        help="LO,HI: every camera sees between LO and HI of the board in every frame (the large "
             f"{CHARUCO_BOARD.cols}x{CHARUCO_BOARD.rows}-square board, {PARTIAL_DEPTH[0]}-"
             f"{PARTIAL_DEPTH[1]} m away; as a chessboard: its {PARTIAL_CHESSBOARD.cols}x"
             f"{PARTIAL_CHESSBOARD.rows} inner corners)"),
) -> None:
    """Render a synthetic rig (ground truth in DIR/truth.json) and its config DIR/calib.yaml."""
    h, w = _synth_size(size, width, height)
    kind = choice_value(board)
    share = _visible(visible, kind)
    with user_errors():
        if share is None:  # today's rig: a 9x6 chessboard, mostly whole in every view
            rig_ = synthetic_rig(cameras, frames, (w, h), seed)  # OpenCV's (width, height) order
        else:
            b = CHARUCO_BOARD if kind == "charuco" else PARTIAL_CHESSBOARD
            rig_ = synthetic_rig(cameras, frames, (w, h), seed, depth=PARTIAL_DEPTH, board=b, visible=share)
        typer.echo(f"wrote {write_dataset(directory, rig_, mosaic=mosaic, seed=seed)}")


def _visible(text: str | None, kind: str) -> tuple[float, float] | None:
    """``--visible LO,HI`` as fractions; the default: 0.4-0.8 for a ChArUco board, none for a chessboard."""
    if text is None:
        return (0.4, 0.8) if kind == "charuco" else None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected LO,HI (two fractions), got {text!r}",
                                 param_hint="--visible") from None
    if not 0 < lo <= hi <= 1:
        raise typer.BadParameter(f"need 0 < LO <= HI <= 1, got {text!r}", param_hint="--visible")
    return lo, hi
