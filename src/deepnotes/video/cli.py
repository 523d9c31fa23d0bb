"""`deepnotes video ...` verbs (thin: parse, then call the library)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Action recognition: synth, train, eval, predict, flow, detect.")

# --- recognition verbs (synth, train, eval, predict) ---

_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, RuntimeError)


def fail(exc: Exception) -> None:
    """Print a user-facing error and exit with status 2."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from exc


@app.command()
def synth(
    kind: str = typer.Argument(..., help="motion (classes differ only in temporal order), scene (appearance only), "
                               "appearance_motion (needs both: two-stream) or untrimmed (long videos for detect)"),
    out: Path = typer.Argument(..., help="folder for videos/, train.txt, val.txt, classes.txt, flip_map.json"),
    n_per_class: int = typer.Option(24, "--n-per-class", help="training videos per class"),
    val_per_class: int = typer.Option(None, "--val-per-class", help="validation videos per class (default N/3)"),
    frames: int = typer.Option(16, "--frames"),
    size: int = typer.Option(32, "--size", help="frame height and width (even)"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a deterministic synthetic dataset of .mp4 files with mmaction2-style lists."""
    from deepnotes.video.data.synth import synth_dataset
    from deepnotes.video.synth_extra import EXTRA_KINDS, synth_extra

    try:
        if kind in EXTRA_KINDS:  # the two-stream and untrimmed datasets (deepnotes.video.synth_extra)
            paths = synth_extra(kind, out, n_per_class, val_per_class, frames, size, seed)
        else:
            paths = synth_dataset(kind, out, n_per_class, val_per_class, frames, size, seed)
    except _USER_ERRORS as exc:
        fail(exc)
    typer.echo(f"wrote {paths['train']} and {paths['val']} ({paths['classes']})")


@app.command("train")
def train_cmd(
    model: str = typer.Option(..., "--model", help="tsn, tsm, tea, stm, tdn, tam, c3d, i3d, r2plus1d, two_stream"),
    train: Path = typer.Option(..., "--train", help="training list: 'path label' or 'frame_dir total_frames label'"),
    out: Path = typer.Option(..., "--out", help="run folder (metrics.json, checkpoint.safetensors)"),
    val: Path = typer.Option(None, "--val", help="validation list, evaluated after every epoch"),
    root: Path = typer.Option(None, "--root", help="folder the list paths are relative to (default: the list's)"),
    classes: Path = typer.Option(None, "--classes", help="class names, one per line (default: classes.txt there)"),
    flip: bool = typer.Option(True, "--flip/--no-flip", help="random horizontal flip in training"),
    flip_map: Path = typer.Option(None, "--flip-map", help="JSON {label: label after flip} (default: flip_map.json)"),
    list_format: str = typer.Option("auto", "--list-format", help="video, rawframes or auto"),
    frame_template: str = typer.Option("img_{:05d}.jpg", "--frame-template", help="frame names in raw-frame folders"),
    start_index: int = typer.Option(1, "--start-index", help="number of the first frame file in raw-frame folders"),
    epochs: int = typer.Option(10, "--epochs"),
    batch_size: int = typer.Option(8, "--batch-size", help="clips per process and step"),
    lr: float = typer.Option(1e-3, "--lr"),
    weight_decay: float = typer.Option(1e-4, "--weight-decay"),
    warmup_epochs: float = typer.Option(1.0, "--warmup-epochs"),
    segments: int = typer.Option(8, "--segments", help="frames per clip"),
    sampling: str = typer.Option("segments", "--sampling", help="segments (TSN) or dense"),
    frame_interval: int = typer.Option(1, "--frame-interval", help="dense sampling: step between frames"),
    input_size: int = typer.Option(112, "--input-size"),
    crop: str = typer.Option("multiscale", "--crop", help="multiscale, resized or center"),
    depth: int = typer.Option(18, "--depth", help="ResNet depth: 10, 18, 34 (basic) or 26, 50, 101 (bottleneck)"),
    width: int = typer.Option(64, "--width", help="channels of the first ResNet stage"),
    stem_stride: int = typer.Option(None, "--stem-stride", help="1, 2 or 4 (default by input size)"),
    dropout: float = typer.Option(0.5, "--dropout"),
    eval_every: int = typer.Option(1, "--eval-every", help="validate every k epochs (and after the last)"),
    freeze_bn: bool = typer.Option(False, "--freeze-bn", help="BatchNorm keeps its running statistics"),
    cache: bool = typer.Option(False, "--cache", help="keep decoded videos in memory"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps"),
    workers: int = typer.Option(2, "--workers", help="DataLoader worker processes"),
    resume: bool = typer.Option(False, "--resume", help="continue from OUT/checkpoint.safetensors"),
    flow_train: Path = typer.Option(None, "--flow-train", help="two_stream: flow_list.txt of --train "
                                    "(`deepnotes video flow`); without it flow is computed on the fly"),
    flow_val: Path = typer.Option(None, "--flow-val", help="two_stream: flow list of --val"),
    new_length: int = typer.Option(5, "--new-length", help="two_stream: flow fields stacked per segment"),
    fusion: str = typer.Option("weighted:1,1.5", "--fusion", help="two_stream: weighted[:w_rgb,w_flow] or learned"),
    stream: str = typer.Option("tsn", "--stream", help="two_stream: recogniser of both streams"),
    flow_method: str = typer.Option("dis", "--flow-method", help="two_stream: method for on-the-fly flow"),
) -> None:
    """Train a video model; also runs under `torchrun --nproc_per_node N` (DistributedDataParallel)."""
    from deepnotes.video.config import TrainConfig
    from deepnotes.video.training import train as run_train

    opt = lambda p: None if p is None else str(p)  # noqa: E731
    cfg = TrainConfig(model=model, train=str(train), out=str(out), val=opt(val), root=opt(root), classes=opt(classes),
                      flip=flip, flip_map=opt(flip_map), list_format=list_format, frame_template=frame_template,
                      start_index=start_index, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      warmup_epochs=warmup_epochs, segments=segments, sampling=sampling,
                      frame_interval=frame_interval, input_size=input_size, crop=crop, depth=depth, width=width,
                      stem_stride=stem_stride, dropout=dropout, eval_every=eval_every, freeze_bn=freeze_bn,
                      cache=cache, seed=seed, device=device, workers=workers, resume=resume, flow_train=opt(flow_train),
                      flow_val=opt(flow_val), new_length=new_length, fusion=fusion, stream=stream,
                      flow_method=flow_method)
    try:
        metrics = run_train(cfg)
    except _USER_ERRORS as exc:
        fail(exc)
    for m in metrics:
        val_part = f"  top1 {m['top1']:.3f}  top5 {m['top5']:.3f}  mca {m['mean_class_acc']:.3f}" if "top1" in m else ""
        if "rgb_top1" in m:  # two_stream: each stream alone
            val_part += f"  (rgb {m['rgb_top1']:.3f}, flow {m['flow_top1']:.3f})"
        typer.echo(f"epoch {m['epoch'] + 1}: train loss {m['train_loss']:.4f}{val_part}  skipped {m['train_skipped']}")
    if metrics:
        typer.echo(f"run: {out}")


@app.command("eval")
def eval_cmd(
    run: Path = typer.Argument(..., help="run folder written by `deepnotes video train`"),
    list_path: Path = typer.Option(..., "--list", help="annotation list to evaluate on"),
    root: Path = typer.Option(None, "--root"),
    clips: int = typer.Option(1, "--clips", help="temporal views per video"),
    crops: int = typer.Option(1, "--crops", help="1 (centre) or 3 (three-crop)"),
    batch_size: int = typer.Option(8, "--batch-size"),
    workers: int = typer.Option(2, "--workers"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Top-1, top-5 and mean class accuracy; writes RUN/eval/LIST.json and a confusion-matrix plot."""
    from deepnotes.video.training import evaluate

    try:
        res = evaluate(run, list_path, root, clips, crops, batch_size, workers, device)
    except _USER_ERRORS as exc:
        fail(exc)
    typer.echo(f"top1 {res['top1']:.4f}  top5 {res['top5']:.4f}  mean class acc {res['mean_class_acc']:.4f}  "
               f"({res['n']} videos, {clips} clip(s) x {crops} crop(s))")
    if res["skipped"]:
        typer.echo(f"{res['skipped']} unreadable video(s) not scored:", err=True)
        for p in res["skipped_paths"]:
            typer.echo(f"  {p}", err=True)
    typer.echo(f"confusion matrix: {res['confusion_plot']}")


@app.command("predict")
def predict_cmd(
    run: Path = typer.Argument(..., help="run folder written by `deepnotes video train`"),
    video: Path = typer.Argument(..., help="a video file or a folder of frames"),
    clips: int = typer.Option(1, "--clips"),
    crops: int = typer.Option(1, "--crops"),
    topk: int = typer.Option(5, "--topk"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Print the top-5 labels with their probabilities."""
    from deepnotes.video.training import predict

    try:
        top = predict(run, video, clips, crops, topk, device)
    except _USER_ERRORS as exc:
        fail(exc)
    for name, score in top:
        typer.echo(f"{score:.4f}  {name}")


@app.command("models")
def models_cmd(
    segments: int = typer.Option(8, "--segments"),
    input_size: int = typer.Option(112, "--input-size"),
    depth: int = typer.Option(18, "--depth"),
    width: int = typer.Option(64, "--width"),
    num_classes: int = typer.Option(400, "--num-classes"),
) -> None:
    """Parameters and FLOPs per clip of every recognition model at one input size."""
    from deepnotes.video.models import MODELS_3D, TEMPORAL_2D, VARIANTS_3D, build_model, model_cost

    stem = 4 if input_size >= 112 else 2 if input_size >= 48 else 1
    typer.echo(f"{'model':10s} {'params':>11s} {'MFLOPs/clip':>12s}   clip 3x{segments}x{input_size}x{input_size}")
    for name in ("tsn", *TEMPORAL_2D, *MODELS_3D, *VARIANTS_3D):
        try:
            model = build_model(name, num_classes, num_segments=segments, depth=depth, width=width,
                                stem_stride=stem, input_size=input_size)
        except _USER_ERRORS as exc:
            fail(exc)
        c = model_cost(model)
        typer.echo(f"{name:10s} {c['params']:11d} {c['flops'] / 1e6:12.1f}")


# the two-stream / optical-flow / untrimmed verbs live in their own module and register on `app`
from deepnotes.video import cli_two_stream  # noqa: E402,F401
