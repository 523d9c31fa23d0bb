"""`deepnotes pose ...`: synth, train, eval, predict (thin: parse, then call the library)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from deepnotes.core.cli import (
    CONFIG_OPTION_HELP,
    fail,
    positive,
    resolve_config,
    resume_folder,
    size_option,
    user_errors,
)
from deepnotes.core.registry import str_enum
from deepnotes.pose.heads import HEADS

app = typer.Typer(no_args_is_help=True, help="Pose estimation with RLE, heatmap and regression heads.")


@app.command()
def synth(
    out: Path = typer.Argument(..., help="folder for annotations.json and images/"),
    n: int = typer.Option(1000, "--n", help="number of images"),
    seed: int = typer.Option(0, "--seed", help="dataset seed (use different seeds for train and val)"),
    size: str = typer.Option("128,128", "--size", help="image size H,W"),
    max_people: int = typer.Option(2, "--max-people", help="figures per image: 1..this"),
) -> None:
    """Render synthetic articulated figures with the 17 COCO joints as COCO keypoint JSON + PNG images."""
    from deepnotes.pose.data.synth import write_dataset

    if n < 1 or max_people < 1:
        fail("--n and --max-people must be at least 1")
    path = write_dataset(out, n, seed, size_option(size, "--size"), max_people)
    typer.echo(f"wrote {path} and {n} images in {out / 'images'}")


_DECODERS = str_enum("Decoder", ["argmax", "soft_argmax"])
_BASES = str_enum("RleBase", ["laplace", "gaussian"])
_POOLS = str_enum("Pool", ["flatten", "avg"])
_SIZE = "H,W (one number: a square)"
_HEAD = HEADS.choices()


@app.command()
def train(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", help=CONFIG_OPTION_HELP, rich_help_panel="Run"),
    head: _HEAD = typer.Option("rle", "--head", help="the pose head", rich_help_panel="Model"),
    train: Path = typer.Option(None, "--train", help="COCO keypoint JSON to train on (required)",
                               rich_help_panel="Data"),
    val: Path = typer.Option(None, "--val", help="COCO keypoint JSON to validate on (required)",
                             rich_help_panel="Data"),
    images: Path = typer.Option(None, "--images", help="folder the file_names are relative to "
                                "(default: images/ beside each annotation file)", rich_help_panel="Data"),
    val_images: Path = typer.Option(None, "--val-images", help="folder of the --val images (default: "
                                    "--images if given, else images/ beside the --val file)",
                                    rich_help_panel="Data"),
    out: Path = typer.Option(None, "--out", help="run folder (required)", rich_help_panel="Run"),
    epochs: int = typer.Option(30, "--epochs", min=1, rich_help_panel="Optimisation"),
    batch_size: int = typer.Option(32, "--batch-size", min=2, help="crops per process and step",
                                   rich_help_panel="Optimisation"),
    lr: float = typer.Option(1e-3, "--lr", callback=positive, rich_help_panel="Optimisation"),
    weight_decay: float = typer.Option(1e-4, "--weight-decay", min=0.0, rich_help_panel="Optimisation"),
    warmup_epochs: float = typer.Option(1.0, "--warmup-epochs", min=0.0, rich_help_panel="Optimisation"),
    eval_every: int = typer.Option(1, "--eval-every", min=1,
                                   help="validate every N epochs (and after the last)",
                                   rich_help_panel="Run"),
    input_size: str = typer.Option("64,48", "--input-size", help=f"crop size {_SIZE}",
                                   rich_help_panel="Model"),
    heatmap_size: str = typer.Option("16,12", "--heatmap-size", help=f"heatmap {_SIZE} (heatmap head)",
                                     rich_help_panel="Model"),
    decoder: _DECODERS = typer.Option("argmax", "--decoder", help="heatmap decoder", rich_help_panel="Model"),
    rle_base: _BASES = typer.Option("laplace", "--rle-base", help="RLE base density",
                                    rich_help_panel="Model"),
    pool: _POOLS = typer.Option("flatten", "--pool", help="regression/RLE features: all positions or global "
                                "average pooling", rich_help_panel="Model"),
    depth: int = typer.Option(18, "--depth", help="ResNet depth", rich_help_panel="Model"),
    width: int = typer.Option(16, "--width", min=1, help="ResNet width (channels of the first stage)",
                              rich_help_panel="Model"),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="random scale, rotation and flip",
                                 rich_help_panel="Data"),
    seed: int = typer.Option(0, "--seed", rich_help_panel="Run"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps", rich_help_panel="Run"),
    workers: int = typer.Option(0, "--workers", min=0, help="data-loading processes (0: in this process)",
                                rich_help_panel="Data"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint "
                                "(its stored config is the base the other flags change)",
                                rich_help_panel="Run"),
    freeze_bn: bool = typer.Option(False, "--freeze-bn", help="BatchNorm keeps its running statistics",
                                   rich_help_panel="Optimisation"),
) -> None:
    """Train a top-down pose model; writes OUT/metrics.json per epoch and an atomic checkpoint.
    Also runs under `torchrun --nproc_per_node N` (DistributedDataParallel; --batch-size is per process)."""
    from deepnotes.core import pick_device
    from deepnotes.pose.config import RunConfig
    from deepnotes.pose.train import train as run_train

    flags = {k: v for k, v in locals().items() if k in RunConfig.__dataclass_fields__}
    flags["input_size"] = size_option(input_size, "--input-size")
    flags["heatmap_size"] = size_option(heatmap_size, "--heatmap-size")
    rc = resolve_config(RunConfig, ctx, config, flags, resume_from=resume_folder(config, out, resume))
    with user_errors():
        run_train(rc.train, rc.val, rc.out, rc.model_config(), rc.train_config(), pick_device(rc.device),
                  images=rc.images, val_images=rc.val_images, resume=resume, log=typer.echo)


@app.command("eval")
def eval_(
    run: Path = typer.Argument(..., help="run folder written by `deepnotes pose train`"),
    ann: Path = typer.Option(..., "--ann", help="COCO keypoint JSON with ground truth"),
    images: Path = typer.Option(None, "--images", help="image folder (default: images/ beside --ann)"),
    device: str = typer.Option("auto", "--device"),
    batch_size: int = typer.Option(64, "--batch-size"),
    workers: int = typer.Option(0, "--workers"),
) -> None:
    """Score a run: writes RUN/eval.json (AP, AP50, AP75, PCK@0.05, PCK@0.1, mean_error_px) and
    RUN/results.json (the COCO results that were scored)."""
    from deepnotes.core import atomic_write_json, pick_device
    from deepnotes.pose.data.coco import load_coco
    from deepnotes.pose.evaluate import evaluate
    from deepnotes.pose.train import load_run

    with user_errors():
        dev = pick_device(device)
        model = load_run(run, dev)
        data = load_coco(ann, images)
    typer.echo(data.summary())
    metrics, results = evaluate(model, data.samples, dev, batch_size, workers)
    metrics = {**metrics, "head": model.config.head, "ann": str(ann), "skipped": dict(data.skipped),
               "results": str(run / "results.json")}
    atomic_write_json(run / "results.json", results)
    atomic_write_json(run / "eval.json", metrics)
    typer.echo(json.dumps(metrics, indent=2))


@app.command()
def predict(
    run: Path = typer.Argument(..., help="run folder"),
    image: Path = typer.Argument(..., help="image file"),
    box: str = typer.Option(..., "--box", help="person box x,y,w,h in pixels"),
    out: Path = typer.Option(..., "--out", help="where to write the image with the skeleton drawn"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Predict one person's keypoints; prints them with their scores (1 - sigma for RLE)."""
    import cv2

    from deepnotes.core import atomic_write_bytes, pick_device
    from deepnotes.pose.data.topdown import read_rgb
    from deepnotes.pose.draw import draw_skeleton
    from deepnotes.pose.evaluate import predict_box
    from deepnotes.pose.skeleton import JOINTS
    from deepnotes.pose.train import load_run

    try:
        x, y, w, h = (float(v) for v in box.split(","))
    except ValueError:
        fail(f"--box takes x,y,w,h (four numbers), got {box!r}")
    if w <= 0 or h <= 0:
        fail(f"--box needs a positive width and height, got {box!r}")
    rgb = read_rgb(image)
    if rgb is None:
        fail(f"cannot read image {image}")
    with user_errors():
        dev = pick_device(device)
        model = load_run(run, dev)
    coords, scores = predict_box(model, rgb, (x, y, w, h), dev)
    drawn = draw_skeleton(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), coords, scores, box=(x, y, w, h))
    ok, data = cv2.imencode(out.suffix or ".png", drawn)
    if not ok:
        fail(f"cannot encode an image as {out.suffix!r}; use .png or .jpg")
    atomic_write_bytes(out, data.tobytes())
    typer.echo(f"{'joint':16s} {'x':>8s} {'y':>8s} {'score':>6s}")
    for name, (px, py), s in zip(JOINTS, coords, scores, strict=True):
        typer.echo(f"{name:16s} {px:8.1f} {py:8.1f} {s:6.3f}")
    typer.echo(f"wrote {out}")
