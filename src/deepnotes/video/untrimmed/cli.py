"""`deepnotes video detect` and `deepnotes video train-actors`: where, when and what in untrimmed videos.
:func:`register` adds the verbs to the video app (:mod:`deepnotes.video.cli`)."""

from __future__ import annotations

from pathlib import Path

import typer

from deepnotes.core import pick_device
from deepnotes.core.cli import fail, user_errors
from deepnotes.core.registry import choice_value, str_enum
from deepnotes.video.data.decode import VideoReadError
from deepnotes.video.untrimmed.actors import annotated_frames, save_actor_net, train_actor_net
from deepnotes.video.untrimmed.detect import detect_run

BoxSource = str_enum("BoxSource", ("motion", "learned"))


def detect_cmd(
    run: Path = typer.Argument(..., help="run folder of a recogniser trained with a 'background' class"),
    video: Path = typer.Argument(..., help="an untrimmed video file"),
    out: Path = typer.Option(..., "--out", help="ActivityNet-style result JSON"),
    render: Path = typer.Option(None, "--render", help="folder for annotated frames and detections.mp4 "
                                                       "(default: <out without .json>_frames)"),
    no_render: bool = typer.Option(False, "--no-render", help="write the JSON only"),
    window: int = typer.Option(16, "--window", min=1, help="sliding-window length in frames"),
    stride: int = typer.Option(4, "--stride", min=1, help="step between windows in frames"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps"),
    boxes: BoxSource = typer.Option("motion", "--boxes", help="actor boxes from motion or a learned net"),
    actor_model: Path = typer.Option(None, "--actor-model", help="actor net for --boxes learned "
                                                                 "(default: RUN/actor_net.safetensors)"),
) -> None:
    """Where, when, what: localise and classify actions in an untrimmed video and box the actors."""
    if not video.exists():
        fail(f"video {video} does not exist")
    render_dir = None if no_render else (render or out.with_name(out.stem + "_frames"))
    with user_errors(VideoReadError):
        result = detect_run(run, video, out, render_dir, window, stride, boxes=choice_value(boxes),
                            device=device, actor_model=actor_model)
    dets = next(iter(result["results"].values()))
    for d in dets[:10]:
        typer.echo(f"{d['score']:.3f}  {d['label']:<12s} {d['segment'][0]:7.2f}s - {d['segment'][1]:7.2f}s  "
                   f"({len(d.get('boxes', []))} boxes)")
    typer.echo(f"{len(dets)} detection(s): {out}" + (f"  rendered: {render_dir}" if render_dir else ""))


def train_actors_cmd(
    dataset: Path = typer.Argument(..., help="folder from `deepnotes video synth untrimmed` (train_gt.json, "
                                             "videos/)"),
    out: Path = typer.Option(..., "--out", help="where to write the actor net, e.g. "
                                                "RUN/actor_net.safetensors"),
    gt: Path = typer.Option(None, "--gt", help="ActivityNet-style ground truth with boxes "
                                               "(default: DATASET/train_gt.json)"),
    steps: int = typer.Option(300, "--steps", min=1),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps"),
) -> None:
    """Train the learned actor-box net used by `detect --boxes learned` on ground-truth actor boxes."""
    gt = gt or dataset / "train_gt.json"
    if not gt.is_file():
        fail(f"ground truth {gt} does not exist")
    with user_errors():
        frames, boxes, skipped = annotated_frames(gt, dataset / "videos")
    for s in skipped:
        typer.echo(f"  skipped {s}", err=True)
    net = train_actor_net(frames, boxes, steps=steps, seed=seed, device=pick_device(device))
    save_actor_net(net.cpu(), out)
    typer.echo(f"actor net trained on {len(frames)} annotated frames ({len(skipped)} videos skipped) -> "
               f"{out}")


def register(app: typer.Typer) -> None:
    """Add ``detect`` and ``train-actors`` to the video app."""
    app.command("detect")(detect_cmd)
    app.command("train-actors")(train_actors_cmd)
