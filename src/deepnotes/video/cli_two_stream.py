"""`deepnotes video flow|detect ...`: optical flow extraction and untrimmed-video detection verbs."""

from __future__ import annotations

from pathlib import Path

import typer

from deepnotes.video.cli import app


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command("flow")
def flow_cmd(
    list_path: Path = typer.Argument(..., help="video list ('path label' per line)"),
    out: Path = typer.Option(..., "--out", help="folder for <video>/x_00001.jpg..., flow.npz, flow_list.txt"),
    method: str = typer.Option("dis", "--method", help="farneback, dis or tvl1 (needs opencv-contrib)"),
    workers: int = typer.Option(1, "--workers", help="videos processed in parallel (processes)"),
    root: Path = typer.Option(None, "--root", help="folder the list paths are relative to (default: the list's)"),
    bound: float = typer.Option(20.0, "--bound", help="flow is clipped to +-bound pixels before 8-bit scaling"),
    formats: str = typer.Option("jpg,npz", "--formats", help="comma-separated: jpg, png, npz"),
) -> None:
    """Extract optical flow for every video of a list; resumable (finished videos are skipped)."""
    from deepnotes.video.flow import FlowUnavailable, extract_list

    if not list_path.is_file():
        _fail(f"list file {list_path} does not exist")
    fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
    try:
        report = extract_list(list_path, out, root, method, workers, bound, fmts)
    except (FlowUnavailable, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    typer.echo(f"flow ({method}): {len(report.written)} written, {len(report.skipped_done)} already done, "
               f"{len(report.failed)} failed; {report.seconds_per_frame * 1e3:.1f} ms per frame")
    for video, reason in report.failed:
        typer.echo(f"  skipped {video}: {reason}", err=True)
    typer.echo(f"list: {out / 'flow_list.txt'}  report: {out / 'flow_report.json'}")


@app.command("detect")
def detect_cmd(
    run: Path = typer.Argument(..., help="run folder of a recogniser trained with a 'background' class"),
    video: Path = typer.Argument(..., help="an untrimmed video file"),
    out: Path = typer.Option(..., "--out", help="ActivityNet-style result JSON"),
    render: Path = typer.Option(None, "--render", help="folder for annotated frames and detections.mp4 "
                                                       "(default: <out without .json>_frames)"),
    no_render: bool = typer.Option(False, "--no-render", help="write the JSON only"),
    window: int = typer.Option(16, "--window", help="sliding-window length in frames"),
    stride: int = typer.Option(4, "--stride", help="step between windows in frames"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps"),
    boxes: str = typer.Option("motion", "--boxes", help="actor boxes from 'motion' or a 'learned' actor net"),
    actor_model: Path = typer.Option(None, "--actor-model", help="actor net for --boxes learned "
                                                                 "(default: RUN/actor_net.safetensors)"),
) -> None:
    """Where, when, what: localise and classify actions in an untrimmed video and box the actors."""
    from deepnotes.video.data.decode import VideoReadError
    from deepnotes.video.untrimmed.detect import detect_run

    if not video.exists():
        _fail(f"video {video} does not exist")
    render_dir = None if no_render else (render or out.with_name(out.stem + "_frames"))
    try:
        result = detect_run(run, video, out, render_dir, window, stride, boxes=boxes, device=device,
                            actor_model=actor_model)
    except (ValueError, FileNotFoundError, VideoReadError) as exc:
        _fail(str(exc))
    dets = next(iter(result["results"].values()))
    for d in dets[:10]:
        typer.echo(f"{d['score']:.3f}  {d['label']:<12s} {d['segment'][0]:7.2f}s - {d['segment'][1]:7.2f}s  "
                   f"({len(d.get('boxes', []))} boxes)")
    typer.echo(f"{len(dets)} detection(s): {out}" + (f"  rendered: {render_dir}" if render_dir else ""))


@app.command("train-actors")
def train_actors_cmd(
    dataset: Path = typer.Argument(..., help="folder from `deepnotes video synth untrimmed` (train_gt.json, videos/)"),
    out: Path = typer.Option(..., "--out", help="where to write the actor net, e.g. RUN/actor_net.safetensors"),
    gt: Path = typer.Option(None, "--gt", help="ActivityNet-style ground truth with boxes (default: DATASET/train_gt.json)"),
    steps: int = typer.Option(300, "--steps"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps"),
) -> None:
    """Train the learned actor-box net used by `detect --boxes learned` on ground-truth actor boxes."""
    from deepnotes.core import pick_device
    from deepnotes.video.untrimmed.actors import annotated_frames, save_actor_net, train_actor_net

    gt = gt or dataset / "train_gt.json"
    if not gt.is_file():
        _fail(f"ground truth {gt} does not exist")
    try:
        frames, boxes, skipped = annotated_frames(gt, dataset / "videos")
    except ValueError as exc:
        _fail(str(exc))
    for s in skipped:
        typer.echo(f"  skipped {s}", err=True)
    net = train_actor_net(frames, boxes, steps=steps, seed=seed, device=pick_device(device))
    save_actor_net(net.cpu(), out)
    typer.echo(f"actor net trained on {len(frames)} annotated frames ({len(skipped)} videos skipped) -> {out}")
