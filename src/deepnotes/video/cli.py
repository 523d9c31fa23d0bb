"""`deepnotes video ...` verbs (thin: parse, then call the library).

synth, train, eval, predict, import-mmaction and models are here; ``flow`` comes from
:mod:`deepnotes.video.two_stream.cli`, ``detect`` and ``train-actors`` from
:mod:`deepnotes.video.untrimmed.cli` (each registers on ``app``).
Choices are enums (listed in --help, refused at parse time); sizes are ``H,W`` (one number: square).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import typer

from deepnotes.core.cli import CONFIG_OPTION_HELP, resolve_config, resume_folder, user_errors
from deepnotes.core.config import parse_numbers
from deepnotes.core.registry import choice_value, str_enum
from deepnotes.video.config import TrainConfig, square_size
from deepnotes.video.data.decode import VideoReadError
from deepnotes.video.data.lists import LIST_FORMATS
from deepnotes.video.data.sampling import MODES
from deepnotes.video.data.synth import KINDS, synth_dataset
from deepnotes.video.data.transforms import CROPS, RGB_SCALES
from deepnotes.video.evaluation import evaluate, predict
from deepnotes.video.models import MODELS, build_model, model_cost
from deepnotes.video.models.base import CONSENSUS
from deepnotes.video.models.two_stream import parse_fusion
from deepnotes.video.synth_extra import EXTRA_KINDS, synth_extra
from deepnotes.video.training import train as run_train
from deepnotes.video.two_stream import cli as two_stream_cli
from deepnotes.video.two_stream.cli import positive
from deepnotes.video.two_stream.flow import METHODS
from deepnotes.video.untrimmed import cli as untrimmed_cli
from deepnotes.video.zoo import ZOO_MODELS, import_mmaction

app = typer.Typer(no_args_is_help=True, help="Action recognition: synth, train, eval, predict, flow, detect.")

SINGLE_STREAM = [n for n in MODELS if MODELS.info(n)["family"] != "two_stream"]  # what a stream can be
Model = MODELS.choices()
Stream = str_enum("Stream", SINGLE_STREAM)
Sampling = str_enum("Sampling", MODES)
Crop = str_enum("Crop", CROPS)
Consensus = str_enum("Consensus", CONSENSUS)
ListFormat = str_enum("ListFormat", LIST_FORMATS)
FlowMethod = str_enum("FlowMethod", METHODS)
SynthKind = str_enum("SynthKind", (*KINDS, *EXTRA_KINDS))
ZooModel = str_enum("ZooModel", ZOO_MODELS)
D = {f.name: f.default for f in fields(TrainConfig)}  # the defaults --help shows (TrainConfig's own)
TWO = "Two-stream (--model two_stream)"  # the --help panel of the flags only two-stream reads
Opt = typer.Option


def scales_spec(value: str | None) -> str | None:
    """``--crop-scales``: comma-separated fractions of the short side in (0, 1], checked at parse time."""
    if value is not None:
        try:
            scales = parse_numbers(value, "--crop-scales")
        except ValueError:
            raise typer.BadParameter(f"expected comma-separated numbers, got {value!r}") from None
        if not all(0 < v <= 1 for v in scales):
            raise typer.BadParameter(f"fractions of the short side must be in (0, 1], got {value}")
    return value


ZERO_INIT = Opt(D["zero_init_residual"], "--zero-init-residual/--no-zero-init-residual",
                help="start every residual branch (and TDN's stem differences) at zero, each block as "
                "identity (off: at gamma 1, torchvision's init)")
CONSENSUS_OPT = Opt(D["consensus"], "--consensus",
                    help="TSN's segmental consensus over the segments' scores (--model tsn)")
CROP_SCALES = Opt(",".join(map(str, D["crop_scales"])), "--crop-scales", callback=scales_spec,
                  help="fractions of the short side the multiscale crop picks from (TSN's RGB recipe: "
                  f"{','.join(map(str, RGB_SCALES))})")
PRETRAINED = Opt(None, "--pretrained", help="2D ResNet weights to start from: a torchvision/timm .pth, a "
                 ".safetensors or a transformers save_pretrained folder (inflated for i3d, r2plus1d); the "
                 "depth and width must match")


def square(flag: str, why: str = "the video pipeline crops squares"):
    """A callback parsing an ``H,W`` flag whose H must equal W into the side."""

    def parse(value: Any) -> int | None:
        if value is None:
            return None
        try:
            return square_size(value, flag, why)
        except ValueError as exc:
            raise typer.BadParameter(str(exc).removeprefix(f"{flag}: ").removeprefix(f"{flag} ")) from None

    return parse


def fraction(value: float | None) -> float | None:
    if value is not None and not 0 <= value < 1:
        raise typer.BadParameter(f"must be in [0, 1), got {value}")
    return value


def fusion_spec(value: str | None) -> str | None:
    """``weighted[:w_rgb,w_flow]`` or ``learned[:...]``, checked at parse time."""
    if value is not None:
        try:
            parse_fusion(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


@app.command()
def synth(
    kind: SynthKind = typer.Argument(..., help="motion (classes differ only in temporal order), scene "
                                     "(appearance only), appearance_motion (needs both: two-stream) or "
                                     "untrimmed (long videos for detect)"),
    out: Path = typer.Argument(..., help="folder for videos/, the lists, classes.txt, flip_map.json"),
    n_per_class: int = Opt(24, "--n-per-class", min=1, help="training videos per class"),
    val_per_class: int = Opt(None, "--val-per-class", min=1, help="validation videos per class (N/3)"),
    frames: int = Opt(16, "--frames", min=2),
    size: str = Opt("32", "--size", callback=square("--size", "the synthetic videos are square"),
                    help="frame size H,W (square, even)"),
    seed: int = Opt(0, "--seed"),
) -> None:
    """Write a deterministic synthetic dataset of .mp4 files with mmaction2-style lists."""
    kind = choice_value(kind)
    with user_errors():
        if kind in EXTRA_KINDS:  # the two-stream and untrimmed datasets (deepnotes.video.synth_extra)
            paths = synth_extra(kind, out, n_per_class, val_per_class, frames, size, seed)
        else:
            paths = synth_dataset(kind, out, n_per_class, val_per_class, frames, size, seed)
    typer.echo(f"wrote {paths['train']} and {paths['val']} ({paths['classes']})")


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    model: Model = Opt(None, "--model", help="the recogniser (unless --config or --resume gives it)"),
    train: Path = Opt(None, "--train", help="training list: 'path label' or 'frame_dir total label'"),
    out: Path = Opt(None, "--out", help="run folder (config.json, metrics.json, checkpoint)"),
    config: Path = Opt(None, "--config", help=CONFIG_OPTION_HELP),
    val: Path = Opt(None, "--val", help="validation list, evaluated every --eval-every epochs"),
    root: Path = Opt(None, "--root", help="folder the list paths are relative to (default: the list's)"),
    classes: Path = Opt(None, "--classes", help="class names, one per line (default: classes.txt there)"),
    num_classes: int = Opt(None, "--num-classes", min=1, help="number of classes without a class list "
                           "(default: the largest label + 1, said); labels >= it are an error"),
    flip: bool = Opt(D["flip"], "--flip/--no-flip", help="random horizontal flip in training"),
    flip_map: Path = Opt(None, "--flip-map", help="JSON {label: label after flip} (default: flip_map.json)"),
    list_format: ListFormat = Opt(D["list_format"], "--list-format"),
    frame_template: str = Opt(D["frame_template"], "--frame-template", help="frame names in frame folders"),
    start_index: int = Opt(D["start_index"], "--start-index", min=0, help="number of the first frame file"),
    epochs: int = Opt(D["epochs"], "--epochs", min=1),
    batch_size: int = Opt(D["batch_size"], "--batch-size", min=1, help="clips per process and step"),
    lr: float = Opt(D["lr"], "--lr", callback=positive),
    weight_decay: float = Opt(D["weight_decay"], "--weight-decay", min=0.0),
    warmup_epochs: float = Opt(D["warmup_epochs"], "--warmup-epochs", min=0.0),
    segments: int = Opt(D["segments"], "--segments", min=1, help="frames per clip"),
    sampling: Sampling = Opt(D["sampling"], "--sampling", help="segments (TSN) or dense"),
    frame_interval: int = Opt(D["frame_interval"], "--frame-interval", min=1, help="dense: frame step"),
    input_size: str = Opt(str(D["input_size"]), "--input-size", callback=square("--input-size"),
                          help="network input H,W (square: one number, or H equal to W)"),
    crop: Crop = Opt(D["crop"], "--crop", help="training crop"),
    crop_scales: str = CROP_SCALES,
    depth: int = Opt(D["depth"], "--depth", min=1, help="ResNet depth: 10, 18, 34, 26, 50 or 101"),
    width: int = Opt(D["width"], "--width", min=1, help="channels of the first ResNet stage"),
    stem_stride: int = Opt(None, "--stem-stride", min=1, help="1, 2 or 4 (default by input size)"),
    dropout: float = Opt(D["dropout"], "--dropout", callback=fraction),
    consensus: Consensus = CONSENSUS_OPT,
    zero_init_residual: bool = ZERO_INIT,
    pretrained: Path = PRETRAINED,
    eval_every: int = Opt(D["eval_every"], "--eval-every", min=1,
                          help="validate every N epochs (and after the last)"),
    freeze_bn: bool = Opt(D["freeze_bn"], "--freeze-bn", help="BatchNorm keeps its running statistics"),
    cache: bool = Opt(D["cache"], "--cache", help="keep decoded videos in memory"),
    seed: int = Opt(D["seed"], "--seed"),
    device: str = Opt(D["device"], "--device", help="auto, cpu, cuda, mps"),
    workers: int = Opt(D["workers"], "--workers", min=0, help="loader worker processes; 0 = in this process"),
    resume: bool = Opt(D["resume"], "--resume", help="continue OUT's run (its config.json is the base)"),
    flow_train: Path = Opt(None, "--flow-train", rich_help_panel=TWO, help="flow_list.txt of --train "
                           "(`deepnotes video flow`); without it flow is computed on the fly"),
    flow_val: Path = Opt(None, "--flow-val", rich_help_panel=TWO, help="flow list of --val"),
    new_length: int = Opt(D["new_length"], "--new-length", min=1, rich_help_panel=TWO,
                          help="flow fields stacked per segment"),
    fusion: str = Opt(D["fusion"], "--fusion", callback=fusion_spec, rich_help_panel=TWO,
                      help="weighted[:w_rgb,w_flow] or learned[:w_rgb,w_flow]"),
    stream: Stream = Opt(D["stream"], "--stream", rich_help_panel=TWO, help="recogniser of both streams"),
    flow_method: FlowMethod = Opt(D["flow_method"], "--flow-method", rich_help_panel=TWO,
                                  help="method for flow computed on the fly"),
) -> None:
    """Train a video model; also runs under `torchrun --nproc_per_node N` (DistributedDataParallel)."""
    cfg = train_config(ctx, config, {k: v for k, v in locals().items() if k in D})  # flag = config field
    with user_errors(VideoReadError):
        metrics = run_train(cfg, log_fn=typer.echo)
    if metrics:
        typer.echo(f"run: {cfg.out}")


def train_config(ctx: typer.Context, config: Path | None, flags: dict[str, Any]) -> TrainConfig:
    """TrainConfig defaults < OUT/config.json (with --resume) < --config FILE < the flags typed."""
    stored = resume_folder(config, flags["out"], flags["resume"])
    return resolve_config(TrainConfig, ctx, config, flags, resume_from=stored)


@app.command("eval")
def eval_cmd(
    run: Path = typer.Argument(..., help="run folder written by `deepnotes video train`"),
    list_path: Path = typer.Option(..., "--list", help="annotation list to evaluate on"),
    root: Path = typer.Option(None, "--root"),
    clips: int = typer.Option(1, "--clips", min=1, help="temporal views per video"),
    crops: int = typer.Option(1, "--crops", min=1, max=3, help="1 (centre) or 3 (three-crop)"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    workers: int = Opt(2, "--workers", min=0, help="loader worker processes; 0 = in this process"),
    device: str = typer.Option("auto", "--device"),
    dump: Path = Opt(None, "--dump", help="write every video's class scores, in list order, to FILE: .jsonl "
                     "(one JSON object per video) or .npz (arrays); unreadable videos have null scores"),
) -> None:
    """Top-1, top-5 and mean class accuracy; writes RUN/eval/LIST.json and a confusion-matrix plot."""
    with user_errors(VideoReadError):
        res = evaluate(run, list_path, root, clips, crops, batch_size, workers, device, dump)
    typer.echo(f"top1 {res['top1']:.4f}  top5 {res['top5']:.4f}  mean class acc {res['mean_class_acc']:.4f}  "
               f"({res['n']} videos, {clips} clip(s) x {crops} crop(s))")
    if res["skipped"]:
        typer.echo(f"{res['skipped']} unreadable video(s) not scored:", err=True)
        for p in res["skipped_paths"]:
            typer.echo(f"  {p}", err=True)
    typer.echo(f"confusion matrix: {res['confusion_plot']}")
    if dump is not None:
        typer.echo(f"per-video scores: {res['dump']}")


@app.command("predict")
def predict_cmd(
    run: Path = typer.Argument(..., help="run folder written by `deepnotes video train`"),
    video: Path = typer.Argument(..., help="a video file or a folder of frames"),
    clips: int = typer.Option(1, "--clips", min=1),
    crops: int = typer.Option(1, "--crops", min=1, max=3),
    topk: int = typer.Option(5, "--topk", min=1),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Print the top-5 labels with their probabilities."""
    with user_errors(VideoReadError):
        top = predict(run, video, clips, crops, topk, device)
    for name, score in top:
        typer.echo(f"{score:.4f}  {name}")


@app.command("import-mmaction")
def import_mmaction_cmd(
    ckpt: Path = typer.Argument(..., help="an mmaction2 TSN or TSM ResNet checkpoint (.pth, its state_dict)"),
    model: ZooModel = Opt(..., "--model", help="the checkpoint's recogniser"),
    out: Path = Opt(..., "--out", help="run folder to write, for video eval and predict"),
    classes: Path = Opt(None, "--classes", help="class names, one per line (default: 0..K-1)"),
    segments: int = Opt(8, "--segments", min=1, help="frames per clip (TSM: as it was trained)"),
    input_size: str = Opt("224", "--input-size", callback=square("--input-size"),
                          help="network input H,W (square; mmaction2's test crop is 224)"),
) -> None:
    """Turn an mmaction2 TSN/TSM checkpoint (read with weights_only=True) into a run folder."""
    with user_errors():
        info = import_mmaction(ckpt, choice_value(model), out, classes, segments, input_size)
    typer.echo(f"imported {info['keys']} tensors: {info['model']} ResNet-{info['depth']}, "
               f"{info['num_classes']} classes, {segments} segments -> {out}")


@app.command("models")
def models_cmd(
    segments: int = typer.Option(8, "--segments", min=1),
    input_size: str = Opt("112", "--input-size", callback=square("--input-size"), help="H,W (square)"),
    depth: int = typer.Option(18, "--depth", min=1),
    width: int = typer.Option(64, "--width", min=1),
    num_classes: int = typer.Option(400, "--num-classes", min=1),
) -> None:
    """Parameters and FLOPs per clip of every single-stream recognition model at one input size."""
    stem = 4 if input_size >= 112 else 2 if input_size >= 48 else 1
    clip = f"3x{segments}x{input_size}x{input_size}"
    typer.echo(f"{'model':10s} {'params':>11s} {'MFLOPs/clip':>12s}   clip {clip}")
    for name in SINGLE_STREAM:
        with user_errors():
            model = build_model(name, num_classes, num_segments=segments, depth=depth, width=width,
                                stem_stride=stem, input_size=input_size)
        c = model_cost(model)
        typer.echo(f"{name:10s} {c['params']:11d} {c['flops'] / 1e6:12.1f}")


two_stream_cli.register(app)  # flow
untrimmed_cli.register(app)  # detect, train-actors
