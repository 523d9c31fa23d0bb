"""`deepnotes video flow`: optical flow extraction for the temporal stream. :func:`register` adds the verb to
the video app (:mod:`deepnotes.video.cli`)."""

from __future__ import annotations

from pathlib import Path

import typer

from deepnotes.core.cli import fail, user_errors
from deepnotes.core.registry import choice_value, str_enum
from deepnotes.video.two_stream.flow import DEFAULT_BOUND, FORMATS, METHODS, FlowUnavailable, extract_list

FlowMethod = str_enum("FlowMethod", METHODS)


def parse_formats(text: str) -> tuple[str, ...]:
    """``"jpg,npz"`` -> ("jpg", "npz"); an empty list or a format other than jpg, png, npz is a usage
    error (exit 2), before any video is read."""
    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        what = f"unknown format {bad[0]!r}" if bad else "no format given"
        raise typer.BadParameter(f"{what}; give a comma-separated list of {', '.join(FORMATS)}")
    return formats


def positive(value: float | None) -> float | None:
    """A parse-time check of a flag that must be above 0 (``--bound``; ``video train --lr``)."""
    if value is not None and value <= 0:
        raise typer.BadParameter(f"must be positive, got {value}")
    return value


def flow_cmd(
    list_path: Path = typer.Argument(..., help="video list ('path label' per line)"),
    out: Path = typer.Option(..., "--out", help="folder for <video>/x_00001.jpg..., flow.npz, flow_list.txt"),
    method: FlowMethod = typer.Option("dis", "--method", help="tvl1 needs opencv-contrib"),
    workers: int = typer.Option(0, "--workers", min=0, help="worker processes extracting videos in parallel; "
                                "0 = in this process"),
    root: Path = typer.Option(None, "--root", help="folder the list paths are relative to (default: the "
                                                   "list's)"),
    bound: float = typer.Option(DEFAULT_BOUND, "--bound", callback=positive,
                                help="flow is clipped to +-bound pixels before 8-bit scaling"),
    formats: str = typer.Option("jpg,npz", "--formats", callback=parse_formats,
                                help=f"comma-separated: {', '.join(FORMATS)}"),
) -> None:
    """Extract optical flow for every video of a list; resumable (finished videos are skipped). Exits 2
    when no video of the list could be processed."""
    method = choice_value(method)
    if not list_path.is_file():
        fail(f"list file {list_path} does not exist")
    with user_errors(FlowUnavailable):
        report = extract_list(list_path, out, root, method, workers, bound, formats)
    typer.echo(f"flow ({method}): {len(report.written)} written, {len(report.skipped_done)} already done, "
               f"{len(report.failed)} failed; {report.seconds_per_frame * 1e3:.1f} ms per frame")
    for video, reason in report.failed:
        typer.echo(f"  skipped {video}: {reason}", err=True)
    typer.echo(f"list: {out / 'flow_list.txt'}  report: {out / 'flow_report.json'}")
    if report.failed and not (report.written or report.skipped_done):
        fail(f"every video failed ({len(report.failed)}): no flow was written")


def register(app: typer.Typer) -> None:
    """Add ``flow`` to the video app."""
    app.command("flow")(flow_cmd)
