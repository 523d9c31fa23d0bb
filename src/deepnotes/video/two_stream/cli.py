"""`deepnotes video flow`: optical flow extraction for the temporal stream; `deepnotes video fuse`: late
fusion of two runs' score dumps. :func:`register` adds the verbs to the video app
(:mod:`deepnotes.video.cli`)."""

from __future__ import annotations

from pathlib import Path

import typer

from deepnotes.core.cli import fail, user_errors
from deepnotes.core.registry import choice_value, str_enum
from deepnotes.video.models.two_stream import parse_fusion
from deepnotes.video.two_stream.flow import DEFAULT_BOUND, FORMATS, METHODS, FlowUnavailable, extract_list
from deepnotes.video.two_stream.fuse import fuse_files

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


def fusion_weights(text: str) -> str:
    """A parse-time check of ``--weights w1,w2``: two non-negative numbers with a positive sum."""
    try:
        parse_fusion(f"weighted:{text}")
    except ValueError as exc:
        raise typer.BadParameter(str(exc).replace("weighted:", "")) from None
    return text


def fuse_cmd(
    first: Path = typer.Argument(..., help="a score dump of `video eval --dump` (.jsonl or .npz), e.g. an "
                                 "RGB run's"),
    second: Path = typer.Argument(..., help="a dump of the same list in the same order, e.g. a flow run's"),
    weights: str = typer.Option("1,1.5", "--weights", callback=fusion_weights,
                                help="w1,w2: fused = (w1 p1 + w2 p2) / (w1 + w2); the default is "
                                "two-stream's RGB,flow weighting"),
    out: Path = typer.Option(None, "--out", help="write the fused scores as a dump (.jsonl or .npz)"),
) -> None:
    """Late-fuse two runs' per-video scores; print top-1, top-5 and mean class accuracy of each and of the
    fusion (on the videos both could read)."""
    w = parse_fusion(f"weighted:{weights}")[1]
    with user_errors():
        res = fuse_files(first, second, w, out)
    rows = [(res["first"]["dump"], res["first"]), (res["second"]["dump"], res["second"]),
            (f"fusion {w[0]:g}:{w[1]:g}", res["fusion"])]
    width = max(len(name) for name, _ in rows)
    typer.echo(f"{'':{width}s}  {'top1':>6s}  {'top5':>6s}  {'mean class acc':>14s}  videos")
    for name, m in rows:
        typer.echo(f"{name:{width}s}  {m['top1']:6.4f}  {m['top5']:6.4f}  {m['mean_class_acc']:14.4f}  "
                   f"{m['n']}")
    skipped = res["fusion"]["unreadable"]
    if skipped:
        typer.echo(f"{skipped} video(s) unreadable in one of the dumps: not scored", err=True)
    if out is not None:
        typer.echo(f"fused scores: {out}")


def register(app: typer.Typer) -> None:
    """Add ``flow`` and ``fuse`` to the video app."""
    app.command("flow")(flow_cmd)
    app.command("fuse")(fuse_cmd)
