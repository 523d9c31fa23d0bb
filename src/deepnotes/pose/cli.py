"""`deepnotes pose ...`: synth, train, eval, predict (thin: parse, then call the library)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Pose estimation with RLE, heatmap and regression heads.")


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def _pair(text: str, flag: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.split(","))
    except ValueError:
        _fail(f"{flag} takes H,W (two integers), got {text!r}")
    if h < 1 or w < 1:
        _fail(f"{flag} must be positive, got {text!r}")
    return h, w


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
        _fail("--n and --max-people must be at least 1")
    path = write_dataset(out, n, seed, _pair(size, "--size"), max_people)
    typer.echo(f"wrote {path} and {n} images in {out / 'images'}")


@app.command()
def train(
    head: str = typer.Option("rle", "--head", help="rle, heatmap or regression"),
    train_ann: Path = typer.Option(..., "--train", help="COCO keypoint JSON to train on"),
    val_ann: Path = typer.Option(..., "--val", help="COCO keypoint JSON to validate on each epoch"),
    images: Path = typer.Option(None, "--images", help="folder the file_names are relative to "
                                "(default: images/ beside each annotation file)"),
    val_images: Path = typer.Option(None, "--val-images", help="folder of the --val images (default: --images "
                                    "if given, else images/ beside the --val file)"),
    out: Path = typer.Option(..., "--out", help="run folder"),
    epochs: int = typer.Option(30, "--epochs"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    weight_decay: float = typer.Option(1e-4, "--weight-decay"),
    input_size: str = typer.Option("64,48", "--input-size", help="crop size H,W"),
    heatmap_size: str = typer.Option("16,12", "--heatmap-size", help="heatmap H,W (heatmap head)"),
    decoder: str = typer.Option("argmax", "--decoder", help="heatmap decoder: argmax or soft_argmax"),
    rle_base: str = typer.Option("laplace", "--rle-base", help="RLE base density: laplace or gaussian"),
    pool: str = typer.Option("flatten", "--pool", help="regression/RLE features: flatten or avg (global pooling)"),
    depth: int = typer.Option(18, "--depth", help="ResNet depth"),
    width: int = typer.Option(16, "--width", help="ResNet width (channels of the first stage)"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, mps"),
    workers: int = typer.Option(0, "--workers", help="data loading processes"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint"),
    freeze_bn: bool = typer.Option(False, "--freeze-bn", help="BatchNorm keeps its running statistics"),
) -> None:
    """Train a top-down pose model; writes OUT/metrics.json per epoch and an atomic checkpoint.
    Also runs under `torchrun --nproc_per_node N` (DistributedDataParallel; --batch-size is per process)."""
    from deepnotes.core import pick_device
    from deepnotes.pose.data.coco import AnnotationError
    from deepnotes.pose.model import PoseConfig
    from deepnotes.pose.train import TrainConfig
    from deepnotes.pose.train import train as run_train

    if epochs < 1 or batch_size < 2 or lr <= 0:
        _fail("--epochs must be >= 1, --batch-size >= 2 and --lr > 0")
    try:
        config = PoseConfig(head=head, input_hw=_pair(input_size, "--input-size"),
                            heatmap_hw=_pair(heatmap_size, "--heatmap-size"), depth=depth, width=width,
                            deconv_channels=4 * width, decoder=decoder, rle_base=rle_base, pool=pool)
        tc = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
                         workers=workers, freeze_bn=freeze_bn)
        run_train(train_ann, val_ann, out, config, tc, pick_device(device), images=images, val_images=val_images,
                  resume=resume, log=typer.echo)
    except (AnnotationError, ValueError, FileExistsError, FileNotFoundError) as exc:
        _fail(str(exc))


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
    from deepnotes.pose.data.coco import AnnotationError, load_coco
    from deepnotes.pose.evaluate import evaluate
    from deepnotes.pose.train import load_run

    try:
        dev = pick_device(device)
        model = load_run(run, dev)
        data = load_coco(ann, images)
    except (AnnotationError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
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
        _fail(f"--box takes x,y,w,h (four numbers), got {box!r}")
    if w <= 0 or h <= 0:
        _fail(f"--box needs a positive width and height, got {box!r}")
    rgb = read_rgb(image)
    if rgb is None:
        _fail(f"cannot read image {image}")
    try:
        dev = pick_device(device)
        model = load_run(run, dev)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    coords, scores = predict_box(model, rgb, (x, y, w, h), dev)
    drawn = draw_skeleton(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), coords, scores, box=(x, y, w, h))
    ok, data = cv2.imencode(out.suffix or ".png", drawn)
    if not ok:
        _fail(f"cannot encode an image as {out.suffix!r}; use .png or .jpg")
    atomic_write_bytes(out, data.tobytes())
    typer.echo(f"{'joint':16s} {'x':>8s} {'y':>8s} {'score':>6s}")
    for name, (px, py), s in zip(JOINTS, coords, scores, strict=True):
        typer.echo(f"{name:16s} {px:8.1f} {py:8.1f} {s:6.3f}")
    typer.echo(f"wrote {out}")
