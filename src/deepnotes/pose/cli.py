"""`deepnotes pose ...`: synth, train, eval, predict (thin: parse, then call the library)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import typer

from deepnotes.core.cli import (
    CONFIG_OPTION_HELP,
    deprecated,
    fail,
    positive,
    resolve_config,
    resume_folder,
    size_option,
    user_errors,
)
from deepnotes.core.registry import str_enum
from deepnotes.pose.config import LEGACY_STEM_STRIDE
from deepnotes.pose.heads import HEADS
from deepnotes.pose.rescoring import KEYPOINT_THR, NMS_THR

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


def _one_of(*allowed: int):
    """A typer callback refusing an int flag outside ``allowed`` at parse time (None: not given)."""

    def check(value: int | None) -> int | None:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"must be one of {', '.join(map(str, allowed))}, got {value}")
        return value

    return check


# typer options by help panel
_MODEL, _DATA = (partial(typer.Option, rich_help_panel=p) for p in ("Model", "Data"))
_RUN, _OPTIM = (partial(typer.Option, rich_help_panel=p) for p in ("Run", "Optimisation"))


@app.command()
def train(
    ctx: typer.Context,
    config: Path = _RUN(None, "--config", help=CONFIG_OPTION_HELP),
    head: _HEAD = _MODEL("rle", "--head", help="the pose head"),
    train: Path = _DATA(None, "--train", help="COCO keypoint JSON to train on (required)"),
    val: Path = _DATA(None, "--val", help="COCO keypoint JSON to validate on (required)"),
    images: Path = _DATA(None, "--images", help="folder the file_names are relative to (default: images/ "
                         "beside each annotation file)"),
    val_images: Path = _DATA(None, "--val-images", help="folder of the --val images (default: --images if "
                             "given, else images/ beside the --val file)"),
    out: Path = _RUN(None, "--out", help="run folder (required)"),
    epochs: int = _OPTIM(30, "--epochs", min=1),
    batch_size: int = _OPTIM(32, "--batch-size", min=2, help="crops per process and step"),
    lr: float = _OPTIM(1e-3, "--lr", callback=positive),
    weight_decay: float = _OPTIM(1e-4, "--weight-decay", min=0.0),
    warmup_epochs: float = _OPTIM(1.0, "--warmup-epochs", min=0.0),
    eval_every: int = _RUN(1, "--eval-every", min=1, help="validate every N epochs (and after the last)"),
    input_size: str = _MODEL("64,48", "--input-size", help=f"crop size {_SIZE}"),
    heatmap_size: str = _MODEL("16,12", "--heatmap-size", help=f"heatmap {_SIZE} (heatmap head)"),
    decoder: _DECODERS = _MODEL("argmax", "--decoder", help="heatmap decoder"),
    rle_base: _BASES = _MODEL("laplace", "--rle-base", help="RLE base density"),
    pool: _POOLS = _MODEL("flatten", "--pool", help="regression/RLE features: all positions or global "
                          "average pooling"),
    depth: int = _MODEL(18, "--depth", help="ResNet depth"),
    width: int = _MODEL(16, "--width", min=1, help="ResNet width (channels of the first stage)"),
    stem_stride: int = _MODEL(None, "--stem-stride", callback=_one_of(1, 2, 4), help="1, 2 or 4: the "
                              "backbone stem's downsampling (default: 2 for crops below 128 px, else 4)"),
    stages: int = _MODEL(None, "--stages", callback=_one_of(3, 4), help="3 or 4 ResNet stages (default 4)"),
    pretrained: Path = _MODEL(None, "--pretrained", help="backbone weights: a torchvision .pth, .safetensors "
                              "or a transformers save_pretrained folder (input then ImageNet-normalised; "
                              "default backbone: the whole ResNet)"),
    augment: bool = _DATA(True, "--augment/--no-augment", help="random scale, rotation and flip"),
    seed: int = _RUN(0, "--seed"),
    device: str = _RUN("auto", "--device", help="auto, cpu, cuda, mps"),
    workers: int = _DATA(0, "--workers", min=0, help="data-loading processes (0: in this process)"),
    resume: bool = _RUN(False, "--resume", help="continue the run in --out from its last checkpoint (its "
                        "stored config is the base the other flags change)"),
    freeze_bn: bool = _OPTIM(False, "--freeze-bn", help="BatchNorm keeps its running statistics"),
) -> None:
    """Train a top-down pose model; writes OUT/metrics.json per epoch and an atomic checkpoint.
    Also runs under `torchrun --nproc_per_node N` (DistributedDataParallel; --batch-size is per process)."""
    from deepnotes.core import pick_device
    from deepnotes.pose.config import RunConfig
    from deepnotes.pose.train import train as run_train

    flags = {k: v for k, v in locals().items() if k in RunConfig.__dataclass_fields__}
    flags["input_size"] = size_option(input_size, "--input-size")
    flags["heatmap_size"] = size_option(heatmap_size, "--heatmap-size")
    # a run folder from before --stem-stride stores no stem stride: it was trained with 4
    rc = resolve_config(RunConfig, ctx, config, flags, resume_from=resume_folder(config, out, resume),
                        defaults={"stem_stride": LEGACY_STEM_STRIDE} if resume else None)
    with user_errors():
        run_train(rc.train, rc.val, rc.out, rc.model_config(), rc.train_config(), pick_device(rc.device),
                  images=rc.images, val_images=rc.val_images, resume=resume, log=typer.echo)


@app.command("eval")
def eval_(
    run: Path = typer.Argument(..., help="run folder written by `deepnotes pose train`"),
    ann: Path = typer.Option(..., "--ann", help="COCO keypoint JSON with ground truth"),
    images: Path = typer.Option(None, "--images", help="image folder (default: images/ beside --ann)"),
    bbox_file: Path = typer.Option(None, "--bbox-file", help="COCO detection results (image_id, bbox, score, "
                                   "category_id 1) to crop persons from instead of the ground-truth boxes"),
    score_thr: float = typer.Option(0.0, "--score-thr", min=0.0, help="--bbox-file: boxes scoring less are "
                                    "left out"),
    flip_test: bool = typer.Option(False, "--flip-test", help="average with the mirrored crop's prediction"),
    keypoint_thr: float = typer.Option(KEYPOINT_THR, "--keypoint-thr", min=0.0, help="person score = box "
                                       "score x mean of the joint scores above this (mmpose's)"),
    nms_thr: float = typer.Option(NMS_THR, "--nms-thr", min=0.0, help="OKS NMS: drop a person whose OKS "
                                  "with a better one is above this (1: no NMS)"),
    device: str = typer.Option("auto", "--device"),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    workers: int = typer.Option(0, "--workers", min=0),
) -> None:
    """Score a run: writes RUN/eval.json (AP, AP50, AP75; with ground-truth boxes also PCK@0.05, PCK@0.1,
    mean_error_px) and RUN/results.json (the COCO results that were scored)."""
    from deepnotes.core import atomic_write_json, pick_device
    from deepnotes.pose.data.coco import load_coco
    from deepnotes.pose.data.detections import load_detections
    from deepnotes.pose.evaluate import evaluate
    from deepnotes.pose.train import load_run

    with user_errors():
        dev = pick_device(device)
        model = load_run(run, dev)
        data = load_coco(ann, images)
        dets = None if bbox_file is None else load_detections(bbox_file, set(data.images), score_thr)
    typer.echo(data.summary())
    if dets is not None:
        typer.echo(dets.summary())
    with user_errors():
        metrics, results = evaluate(model, data.samples, dev, batch_size, workers,
                                    detections=None if dets is None else dets.boxes, flip=flip_test,
                                    keypoint_thr=keypoint_thr, nms_thr=nms_thr, ground_truth=data)
    metrics = {**metrics, "head": model.config.head, "ann": str(ann), "skipped": dict(data.skipped),
               "boxes": "ground truth" if dets is None else str(bbox_file), "flip_test": flip_test,
               "results": str(run / "results.json")}
    if dets is not None:
        metrics.update(score_thr=score_thr, skipped_boxes=dict(dets.skipped))
    atomic_write_json(run / "results.json", results)
    atomic_write_json(run / "eval.json", metrics)
    typer.echo(json.dumps(metrics, indent=2))


def _boxes(image: Path, boxes: str | None, box: str | None) -> list:
    """The person boxes of ``predict``: ``--boxes`` (a detection file or x,y,w,h;...) or the deprecated
    ``--box``."""
    from deepnotes.pose.data.detections import load_detections, parse_boxes

    if box is not None:
        deprecated("--box", "--boxes")
        if boxes is not None:
            fail("give --boxes or --box, not both")
    text = boxes if boxes is not None else box
    if text is None:
        fail("give the persons' boxes: --boxes x,y,w,h[;x,y,w,h...] or --boxes DET.json")
    flag = "--boxes" if boxes is not None else "--box"
    with user_errors():
        if text.lower().endswith(".json"):
            found = load_detections(text).boxes
            # COCO names images by their zero-padded id: 000000000139.jpg is image_id 139
            image_id = int(image.stem) if image.stem.isdigit() else None
            ids = sorted({d.image_id for d in found})
            mine = [d.bbox for d in found if d.image_id == image_id or len(ids) == 1]
            if not mine:
                fail(f"{flag} {text}: no person box for {image.name} (image ids in the file: "
                     f"{', '.join(map(str, ids[:10])) or 'none'}{' ...' * (len(ids) > 10)})")
            return mine
        try:
            return parse_boxes(text)
        except ValueError as exc:
            fail(f"{flag}: {exc}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="run folder"),
    image: Path = typer.Argument(..., help="image file"),
    boxes: str = typer.Option(None, "--boxes", help="person boxes: x,y,w,h;x,y,w,h... in pixels, or a COCO "
                              "detection file (the boxes whose image_id is the file name's number, or all "
                              "of a file about one image)"),
    box: str = typer.Option(None, "--box", hidden=True, help="deprecated: one box x,y,w,h (use --boxes)"),
    out: Path = typer.Option(..., "--out", help="where to write the image with the skeletons drawn"),
    flip_test: bool = typer.Option(False, "--flip-test", help="average with the mirrored crop's prediction"),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Predict every boxed person's keypoints; prints them with their scores (1 - sigma for RLE)."""
    import cv2

    from deepnotes.core import atomic_write_bytes, pick_device
    from deepnotes.pose.data.topdown import read_rgb
    from deepnotes.pose.draw import draw_skeleton
    from deepnotes.pose.evaluate import predict_boxes
    from deepnotes.pose.skeleton import JOINTS
    from deepnotes.pose.train import load_run

    picked = _boxes(image, boxes, box)
    rgb = read_rgb(image)
    if rgb is None:
        fail(f"cannot read image {image}")
    with user_errors():
        dev = pick_device(device)
        model = load_run(run, dev)
    coords, scores = predict_boxes(model, rgb, picked, dev, flip=flip_test)
    drawn = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    for b, xy, s in zip(picked, coords, scores, strict=True):
        drawn = draw_skeleton(drawn, xy, s, box=tuple(float(v) for v in b))
    ok, data = cv2.imencode(out.suffix or ".png", drawn)
    if not ok:
        fail(f"cannot encode an image as {out.suffix!r}; use .png or .jpg")
    atomic_write_bytes(out, data.tobytes())
    for p, (b, xy, s) in enumerate(zip(picked, coords, scores, strict=True)):
        typer.echo(f"person {p + 1}: box {','.join(f'{v:g}' for v in b)}")
        typer.echo(f"{'joint':16s} {'x':>8s} {'y':>8s} {'score':>6s}")
        for name, (px, py), sc in zip(JOINTS, xy, s, strict=True):
            typer.echo(f"{name:16s} {px:8.1f} {py:8.1f} {sc:6.3f}")
    typer.echo(f"wrote {out}")


_ZOO_HEADS = str_enum("MmposeHead", ["rle", "heatmap"])


@app.command("import-mmpose")
def import_mmpose(
    checkpoint: Path = typer.Argument(..., help="mmpose top-down ResNet checkpoint (.pth; read with "
                                      "torch.load(weights_only=True))"),
    head: _ZOO_HEADS = typer.Option(..., "--head", help="the checkpoint's head: rle (RLEHead) or heatmap "
                                    "(HeatmapHead / TopdownHeatmapSimpleHead)"),
    out: Path = typer.Option(..., "--out", help="run folder to write (pose eval / pose predict read it)"),
    input_size: str = typer.Option("256,192", "--input-size", help=f"its training crop size {_SIZE}"),
) -> None:
    """Turn an mmpose top-down ResNet heatmap or RLE checkpoint into a run folder (RUN/checkpoint.safetensors
    and RUN/import.json); mmpose's input normalisation, crop placement, heatmap and flip conventions are
    stored with it."""
    from deepnotes.pose.mmpose import import_mmpose as run_import

    hw = size_option(input_size, "--input-size")
    with user_errors():
        info = run_import(checkpoint, head.value, out, hw)
    cfg = info["config"]
    maps = f", heatmaps {cfg['heatmap_hw'][0]}x{cfg['heatmap_hw'][1]}" if cfg["head"] == "heatmap" else ""
    typer.echo(f"imported {info['keys']} tensors of {checkpoint}: ResNet-{cfg['depth']} (width "
               f"{cfg['width']}) + {cfg['head']} head, crops {cfg['input_hw'][0]}x{cfg['input_hw'][1]}"
               f"{maps}; wrote {out}")
