"""Training, evaluation and prediction for every video model; the CLI verbs are thin wrappers of these.

``train(config)`` runs alone or under ``torchrun --nproc_per_node N`` (DistributedDataParallel, gloo on CPU,
nccl on CUDA): each process loads its share of every global batch, gradients are averaged, rank 0
writes ``metrics.json`` and the checkpoint (atomically, every epoch); ``resume`` continues from it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepnotes.core import RunDir, pick_device, progress, seed_everything
from deepnotes.core.checkpoint import atomic_write_json, read_meta
from deepnotes.core.distributed import (
    DistInfo,
    all_reduce_sum,
    any_rank,
    barrier,
    broadcast_buffers,
    cleanup,
    freeze_batchnorm,
    gather_lists,
    global_mean_factor,
    init_distributed,
    local_device,
    wrap_ddp,
)
from deepnotes.optim import AdamW, cosine_with_warmup
from deepnotes.video.config import TrainConfig
from deepnotes.video.data import (
    ClipSampler,
    RGBLoader,
    VideoDataset,
    count_frame_files,
    make_loader,
    set_epoch,
)
from deepnotes.video.data.lists import ListError, VideoRecord, read_classes, read_list
from deepnotes.video.data.transforms import eval_transform, train_transform
from deepnotes.video.metrics import confusion, plot_confusion, summarize, topk_correct
from deepnotes.video.models import build_from_config, build_model

log = logging.getLogger("deepnotes.video")

# what a resumed run must share with its checkpoint (and the process count): the schedule is a step count
RESUME_KEYS = ("batch_size", "lr", "weight_decay", "warmup_epochs", "seed")

# modality -> frame loader factory(config); the two-stream work registers "flow" here
LOADERS: dict[str, Callable[[TrainConfig], Callable]] = {
    "rgb": lambda cfg: (CachedLoader(RGBLoader(cfg.frame_template, cfg.start_index)) if cfg.cache
                        else RGBLoader(cfg.frame_template, cfg.start_index)),
    # RGB frames + the stacked flow around each (deepnotes.video.flow_dataset.TwoStreamLoader)
    "two_stream": lambda cfg: _two_stream_data().two_stream_loader(cfg, LOADERS["rgb"](cfg)),
}


def _two_stream_data():
    from deepnotes.video import flow_dataset

    return flow_dataset


class CachedLoader:
    """Decode each video once and keep all its frames (for small datasets and repeated experiments)."""

    def __init__(self, inner: RGBLoader) -> None:
        self.inner, self._videos = inner, {}

    def num_frames(self, record: VideoRecord) -> int:
        return len(self._all(record))

    def _all(self, record: VideoRecord) -> np.ndarray:
        key = str(record.path)
        if key not in self._videos:
            total = self.inner.num_frames(record)
            self._videos[key] = self.inner(record, np.arange(total))
        return self._videos[key]

    def __call__(self, record: VideoRecord, indices: np.ndarray) -> np.ndarray:
        return self._all(record)[np.clip(indices, 0, len(self._all(record)) - 1)]


def sampler_of(cfg: TrainConfig) -> ClipSampler:
    return ClipSampler(cfg.sampling, cfg.segments, cfg.frame_interval)


def class_names(cfg: TrainConfig, records: list[VideoRecord]) -> list[str]:
    """From ``cfg.classes``, else ``classes.txt`` beside the train list, else "0".."K-1" (K = max label + 1)."""
    path = Path(cfg.classes) if cfg.classes else Path(cfg.train).parent / "classes.txt"
    if cfg.classes or path.is_file():
        return read_classes(path)
    return [str(i) for i in range(max(r.label for r in records) + 1)]


def flip_map(cfg: TrainConfig, num_classes: int) -> dict[int, int]:
    """``{label: label after a horizontal flip}`` from ``cfg.flip_map``, else ``flip_map.json`` beside the train
    list, else ``{}``; every key and value must be a class index and the map its own inverse."""
    path = Path(cfg.flip_map) if cfg.flip_map else Path(cfg.train).parent / "flip_map.json"
    if not (cfg.flip_map or path.is_file()):
        return {}
    try:
        mapping = {int(k): int(v) for k, v in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError) as exc:
        raise ListError(f"{path}: expected a JSON object {{label: label}}: {exc}") from None
    bad = [(k, v) for k, v in mapping.items() if not (0 <= k < num_classes and 0 <= v < num_classes)]
    if bad:
        raise ListError(f"{path}: entry {bad[0][0]} -> {bad[0][1]} is outside the class range [0, {num_classes}) "
                        "(labels are the class indices of the lists)")
    # flipping twice is the identity, so the map must be its own inverse: 0 -> 1 needs 1 -> 0
    one_way = [(k, v) for k, v in mapping.items() if mapping.get(v, v) != k]
    if one_way:
        k, v = one_way[0]
        raise ListError(f"{path}: entry {k} -> {v} has no way back ({v} -> {mapping.get(v, v)}); a horizontal flip is "
                        f"its own inverse, so add \"{v}\": {k} (or drop the entry)")
    return mapping


def model_options(cfg: TrainConfig) -> dict[str, Any]:
    options = {"num_segments": cfg.segments, "depth": cfg.depth, "width": cfg.width,
               "stem_stride": cfg.resolved_stem_stride(), "dropout": cfg.dropout, "input_size": cfg.input_size}
    if cfg.model == "two_stream":
        options.update(stream=cfg.stream, new_length=cfg.new_length, fusion=cfg.fusion)
    return options


def make_dataset(cfg: TrainConfig, records: list[VideoRecord], train: bool, num_clips: int = 1,
                 crops: int = 1, label_map: dict[int, int] | None = None) -> VideoDataset:
    if cfg.modality == "two_stream":  # one crop and flip shared by RGB and flow, flow values follow them
        tf = _two_stream_data().two_stream_transform(cfg, train, crops, label_map)
    elif train:
        tf = train_transform(cfg.input_size, cfg.crop, cfg.flip, label_map)
    else:
        tf = eval_transform(cfg.input_size, crops)
    if cfg.modality not in LOADERS:
        raise ValueError(f"unknown modality {cfg.modality!r}; valid: {', '.join(LOADERS)}")
    return VideoDataset(records, sampler_of(cfg), tf, train, LOADERS[cfg.modality](cfg), num_clips, cfg.seed)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and normalisation parameters (1-D tensors)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader, num_classes: int, device: torch.device,
                    info: DistInfo = DistInfo(), desc: str = "eval") -> dict[str, Any]:
    """Scores averaged over views after softmax; returns metrics, the confusion matrix and skipped paths.
    Under DDP each rank evaluates its share and the counts are summed."""
    model.eval()
    conf = torch.zeros(num_classes, num_classes, dtype=torch.long)
    top5, loss_sum, skipped = 0, 0.0, []
    for batch in progress(loader, desc=desc, total=len(loader)):
        skipped += [str(loader.dataset.dataset.records[i].path) for i in batch.skipped]
        if batch.clips is None:
            continue
        clips, labels = batch.clips.to(device), batch.labels.to(device)
        if clips.ndim == 6:  # (N, V, C, T, H, W): every view through the net, softmax, then average
            n, v = clips.shape[:2]
            probs = F.softmax(model(clips.flatten(0, 1)), 1).view(n, v, -1).mean(1)
        else:
            probs = F.softmax(model(clips), 1)
        loss_sum += F.nll_loss(probs.clamp_min(1e-12).log(), labels, reduction="sum").item()
        top5 += topk_correct(probs, labels, 5)
        conf += confusion(probs.argmax(1), labels, num_classes).cpu()
    totals = all_reduce_sum(torch.tensor([top5, loss_sum, len(skipped)], dtype=torch.float64), info)
    conf = all_reduce_sum(conf, info)
    out = summarize(conf, int(totals[0]), float(totals[1]))
    out.update(skipped=int(totals[2]), confusion=conf.tolist(), skipped_paths=gather_lists(skipped, info))
    return out


def train(cfg: TrainConfig) -> list[dict[str, Any]]:
    """Train ``cfg.model`` on ``cfg.train``; returns the per-epoch metrics written to ``OUT/metrics.json``."""
    device = pick_device(cfg.device)
    info = init_distributed(device)
    try:
        return _train(cfg, local_device(device, info), info)
    finally:
        cleanup(info)


def _train(cfg: TrainConfig, device: torch.device, info: DistInfo) -> list[dict[str, Any]]:
    seed_everything(cfg.seed)
    if cfg.model == "two_stream":  # its clips carry RGB and flow
        cfg = TrainConfig.from_dict({**cfg.to_dict(), "modality": "two_stream"})
    train_records = read_list(cfg.train, cfg.root, kind=cfg.list_format)
    classes = class_names(cfg, train_records)
    train_records = read_list(cfg.train, cfg.root, len(classes), cfg.list_format)  # checks the label range
    val_records = read_list(cfg.val, cfg.root, len(classes), cfg.list_format) if cfg.val else []
    model = build_model(cfg.model, len(classes), **model_options(cfg)).to(device)
    model_cfg = asdict(model.cfg)

    run = RunDir(cfg.out)
    start_epoch = 0
    if run.has_checkpoint() and not cfg.resume:
        raise FileExistsError(f"{run.checkpoint_path} exists; pass --resume to continue it or use another --out")
    train_ds = make_dataset(cfg, train_records, True, label_map=flip_map(cfg, len(classes)))
    train_loader = make_loader(train_ds, cfg.batch_size, True, cfg.workers, cfg.seed, info.rank, info.world_size,
                               drop_last=True)
    if len(train_loader) == 0:
        raise ValueError(f"{cfg.train} has {len(train_records)} samples, fewer than one batch of "
                         f"{cfg.batch_size} x {info.world_size} processes; lower --batch-size")
    val_loader = None
    if val_records:
        val_ds = make_dataset(cfg, val_records, False)
        val_loader = make_loader(val_ds, cfg.batch_size, False, cfg.workers, cfg.seed, info.rank, info.world_size)

    optimizer = AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    steps = cfg.epochs * len(train_loader)
    scheduler = cosine_with_warmup(optimizer, int(cfg.warmup_epochs * len(train_loader)), steps)
    resume_fields = {**{k: getattr(cfg, k) for k in RESUME_KEYS}, "world_size": info.world_size}
    if cfg.resume and run.has_checkpoint():
        # the schedule's position is a step count: another batch size or process count would move it, and
        # the scheduler's state would silently keep the checkpoint's lr
        state, meta = run.load(str(device), expect={"model": cfg.model}, expect_if_stored=resume_fields)
        if meta.get("model_config") != model_cfg:
            raise ValueError(f"{run.checkpoint_path} holds {meta.get('model_config')}, not {model_cfg}; "
                             "use the same --depth/--width/--segments/--input-size or another --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
    if info.is_main:
        run.write_config({**cfg.to_dict(), "world_size": info.world_size, "classes": classes})
    net = wrap_ddp(model, device, info, sync_bn=not cfg.freeze_bn)

    placeholder: tuple[torch.Tensor, torch.Tensor] | None = None
    for epoch in range(start_epoch, cfg.epochs):
        # dropout masks: the same with or without a resume, and independent across processes
        seed_everything(cfg.seed + 1000 * epoch + info.rank)
        set_epoch(train_loader, epoch)
        _train_mode(net, cfg.freeze_bn)
        t0, loss_sum, seen, skipped = time.perf_counter(), 0.0, 0, 0
        for batch in progress(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", total=len(train_loader)):
            skipped += len(batch.skipped)
            n_here = 0 if batch.clips is None else len(batch.labels)
            if not any_rank(n_here > 0, info):
                scheduler.step()  # nothing readable in the whole global batch: one process skips it too
                continue
            if n_here:
                clips, labels = batch.clips.to(device, non_blocking=True), batch.labels.to(device)
            else:
                # this process read nothing but others did: DDP needs every process in the step, so this one
                # runs a readable clip with weight 0, BatchNorm and dropout in eval mode (no statistics move)
                placeholder = placeholder or _readable_clip(train_ds, device)
                clips, labels = placeholder
                net.eval()
            out = net(clips)
            # models with their own objective (two_stream: one cross-entropy per stream) define .loss
            loss = model.loss(out, labels) if hasattr(model, "loss") else F.cross_entropy(out, labels)
            # a mean over this process's clips: weighed by their share, the step is one process's over all
            factor = global_mean_factor(n_here, info)
            optimizer.zero_grad(set_to_none=True)
            (loss * factor).backward()
            optimizer.step()
            scheduler.step()
            if not n_here:
                _train_mode(net, cfg.freeze_bn)
            loss_sum += loss.item() * n_here
            seen += n_here
        totals = all_reduce_sum(torch.tensor([loss_sum, seen, skipped], dtype=torch.float64), info)
        entry: dict[str, Any] = {"epoch": epoch, "train_loss": totals[0].item() / max(totals[1].item(), 1),
                                 "train_skipped": int(totals[2]), "lr": scheduler.get_last_lr()[0],
                                 "seconds": round(time.perf_counter() - t0, 2)}
        if val_loader is not None and ((epoch + 1) % max(cfg.eval_every, 1) == 0 or epoch + 1 == cfg.epochs):
            set_epoch(val_loader, 0)
            # every process validates the weights rank 0 saves: its BatchNorm statistics too (DDP broadcasts
            # them before each forward, but each process's last training step moved its own)
            broadcast_buffers(model, info)
            res = evaluate_loader(model, val_loader, len(classes), device, info, desc="val")
            entry.update({"loss": res["loss"], "top1": res["top1"], "top5": res["top5"],
                          "mean_class_acc": res["mean_class_acc"], "val_skipped": res["skipped"]})
            if cfg.model == "two_stream":  # each stream alone next to the fusion
                entry.update(_two_stream_val(model, val_loader, len(classes), device, info))
        if entry["train_skipped"] or entry.get("val_skipped"):
            log.warning("epoch %d: skipped %d unreadable training and %d validation videos", epoch,
                        entry["train_skipped"], entry.get("val_skipped", 0))
        if info.is_main:
            # metrics first: a crash between the two then reruns this epoch on resume (its entry is replaced)
            # instead of resuming after an epoch whose metrics were never written
            run.log_epoch(entry)
            run.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), "epoch": epoch},
                     {"model": cfg.model, "model_config": model_cfg, "classes": classes, "epoch": epoch,
                      "data": data_meta(cfg), **resume_fields})
        barrier(info)
    return run.metrics if info.is_main else []


def _train_mode(net: nn.Module, freeze_bn: bool) -> None:
    net.train()
    if freeze_bn:
        freeze_batchnorm(net)


def _readable_clip(dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first readable training clip as a batch of one (clips, labels): what a process with no readable
    video in a step feeds DDP, with weight 0."""
    for i in range(len(dataset)):
        item = dataset[i]
        if item is not None:
            return item["clip"][None].to(device), torch.tensor([item["label"]], device=device)
    raise RuntimeError("no training video could be read")


def _two_stream_val(model: nn.Module, loader, num_classes: int, device: torch.device,
                    info: DistInfo) -> dict[str, float]:
    from deepnotes.video.two_stream import StreamView

    out = {}
    for stream in ("rgb", "flow"):
        res = evaluate_loader(StreamView(model, stream), loader, num_classes, device, info, desc=f"val {stream}")
        out.update({f"{stream}_top1": res["top1"], f"{stream}_mean_class_acc": res["mean_class_acc"]})
    return out


def data_meta(cfg: TrainConfig) -> dict[str, Any]:
    """What eval/predict need to sample and transform clips the way training did."""
    return {k: getattr(cfg, k) for k in ("segments", "sampling", "frame_interval", "input_size", "modality",
                                         "frame_template", "start_index", "list_format", "seed", "new_length",
                                         "flow_method", "flow_bound")}


def load_run(run_dir: str | Path, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model of a run folder (in eval mode) and its checkpoint meta."""
    run = RunDir(run_dir)
    if not run.has_checkpoint():
        raise FileNotFoundError(f"{run.checkpoint_path} does not exist; is {run_dir} a finished video train run?")
    meta = read_meta(run.checkpoint_path)
    if "model_config" not in meta:
        raise ValueError(f"{run.checkpoint_path} is not a video checkpoint (no model_config in its meta)")
    model = build_from_config(meta["model_config"]).to(device)
    state, _ = run.load(str(device))
    model.load_state_dict(state["model"])
    return model.eval(), meta


def _eval_config(meta: dict[str, Any], **overrides) -> TrainConfig:
    d = meta["data"]
    return TrainConfig(model=meta["model"], train="", out="", **d, **overrides)


def evaluate(run_dir: str | Path, list_path: str | Path, root: str | Path | None = None, clips: int = 1,
             crops: int = 1, batch_size: int = 8, workers: int = 2, device: str = "auto") -> dict[str, Any]:
    """Evaluate a run on a list; writes ``RUN/eval/<list>.json`` and ``<list>-confusion.png``.
    Unreadable videos are reported (count and paths), not fatal."""
    dev = pick_device(device)
    model, meta = load_run(run_dir, dev)
    classes = meta["classes"]
    cfg = _eval_config(meta, workers=workers)
    records = read_list(list_path, root, len(classes), cfg.list_format)
    ds = make_dataset(cfg, records, False, num_clips=clips, crops=crops)
    res = evaluate_loader(model, make_loader(ds, batch_size, False, workers), len(classes), dev)
    out_dir = Path(run_dir) / "eval"
    name = Path(list_path).stem
    res["confusion_plot"] = str(plot_confusion(np.array(res["confusion"]), classes,
                                               out_dir / f"{name}-confusion.png", f"{meta['model']} on {name}"))
    res.update(list=str(list_path), views={"clips": clips, "crops": crops})
    atomic_write_json(out_dir / f"{name}.json", res)
    return res


def predict(run_dir: str | Path, video: str | Path, clips: int = 1, crops: int = 1, topk: int = 5,
            device: str = "auto") -> list[tuple[str, float]]:
    """Top-k (class name, probability) for one video file or frames folder; unreadable input raises
    :class:`~deepnotes.video.data.VideoReadError`."""
    dev = pick_device(device)
    model, meta = load_run(run_dir, dev)
    cfg = _eval_config(meta, workers=0)
    video = Path(video)
    if not video.exists():
        raise FileNotFoundError(f"{video} does not exist")
    total = count_frame_files(video, cfg.frame_template, cfg.start_index) if video.is_dir() else None
    ds = make_dataset(cfg, [VideoRecord(video, 0, total, str(video))], False, num_clips=clips, crops=crops)
    ds.strict = True
    item = ds[0]
    with torch.no_grad():
        probs = F.softmax(model(item["clip"].to(dev)), 1).mean(0)
    scores, idx = probs.topk(min(topk, len(meta["classes"])))
    return [(meta["classes"][i], float(s)) for s, i in zip(scores.tolist(), idx.tolist(), strict=True)]

