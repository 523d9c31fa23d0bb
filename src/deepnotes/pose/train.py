"""Training loop: AdamW + cosine schedule, per-epoch validation, atomic checkpoints, resume.

Runs alone or under ``torchrun --nproc_per_node N`` (DistributedDataParallel; ``batch_size`` is per
process): each process trains on its share of every global batch, the loss is rescaled so the averaged
gradient is that of the mean over all labelled joints of the global batch, and rank 0 validates and
writes the run folder while the others wait.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from deepnotes.core import RunDir, progress, seed_everything
from deepnotes.core.checkpoint import read_meta
from deepnotes.core.distributed import (
    DistInfo,
    ShardedBatchSampler,
    all_reduce_sum,
    any_rank,
    barrier,
    cleanup,
    freeze_batchnorm,
    global_mean_factor,
    init_distributed,
    local_device,
    wrap_ddp,
)
from deepnotes.optim import AdamW, cosine_with_warmup
from deepnotes.pose.data.coco import load_coco
from deepnotes.pose.data.topdown import TopDownDataset, collate
from deepnotes.pose.evaluate import evaluate
from deepnotes.pose.model import PoseConfig, PoseModel
from deepnotes.pose.transforms import Augment

MODEL_NAME = "pose"


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    seed: int = 0
    workers: int = 0
    augment: bool = True
    freeze_bn: bool = False  # BatchNorm keeps its running statistics (how DDP on CPU matches one process)


def _resume_fields(tc: TrainConfig, info: DistInfo) -> dict:
    """What a resumed run must share with the checkpoint to continue it exactly."""
    fields = asdict(tc)
    return {**{k: fields[k] for k in ("batch_size", "lr", "weight_decay", "seed")},
            "world_size": info.world_size}


def load_run(run: str | Path, device: torch.device | str = "cpu", head: str | None = None) -> PoseModel:
    """The trained model of run folder ``run`` (eval mode). ``head``: refuse a checkpoint of another head."""
    rd = RunDir(run)
    if not rd.has_checkpoint():
        raise FileNotFoundError(f"{rd.checkpoint_path} does not exist: train into {run} first")
    meta = read_meta(rd.checkpoint_path)
    if meta.get("model") != MODEL_NAME:
        raise ValueError(f"{rd.checkpoint_path} is a {meta.get('model')!r} checkpoint, not a pose model")
    if head is not None and meta.get("head") != head:
        raise ValueError(f"{rd.checkpoint_path} holds a {meta.get('head')!r} head, not {head!r}")
    model = PoseModel(PoseConfig.from_dict(meta["config"]))
    state, _ = rd.load(device="cpu")
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def train(train_ann: str | Path, val_ann: str | Path, out: str | Path, config: PoseConfig, tc: TrainConfig,
          device: torch.device, images: str | Path | None = None, val_images: str | Path | None = None,
          resume: bool = False, log=print) -> list[dict]:
    """Train ``config`` on ``train_ann``; validate on ``val_ann`` each epoch; returns the metrics list
    (empty on ranks other than 0 under torchrun)."""
    device = torch.device(device)
    info = init_distributed(device)
    try:
        return _train(train_ann, val_ann, out, config, tc, local_device(device, info), images, val_images, resume,
                      log if info.is_main else (lambda _: None), info)
    finally:
        cleanup(info)


def _train(train_ann, val_ann, out, config: PoseConfig, tc: TrainConfig, device: torch.device, images, val_images,
           resume: bool, log, info: DistInfo) -> list[dict]:
    seed_everything(tc.seed)
    rd = RunDir(out)
    if rd.has_checkpoint() and not resume:
        raise FileExistsError(f"{rd.checkpoint_path} exists: pass --resume to continue it or use another --out")
    train_set = load_coco(train_ann, images)
    val_set = load_coco(val_ann, val_images if val_images is not None else images)
    log(train_set.summary())
    log(val_set.summary())
    if not train_set.samples:
        raise ValueError(f"{train_ann}: no usable person annotations to train on")
    if not val_set.samples:  # e.g. --images named the training folder and the val images live elsewhere
        raise ValueError(f"{val_ann}: no usable person annotations to validate on ({val_set.summary()}); "
                         "if its images are in another folder, pass --val-images")
    model = PoseModel(config).to(device)
    opt = AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    dataset = TopDownDataset(train_set.samples, config.input_hw, Augment() if tc.augment else None, tc.seed)
    global_batch = tc.batch_size * info.world_size
    sampler = ShardedBatchSampler(len(dataset), tc.batch_size, True, tc.seed, info.rank, info.world_size,
                                  drop_last=len(dataset) > global_batch)
    steps_per_epoch = max(1, len(dataset) // global_batch)
    sched = cosine_with_warmup(opt, int(tc.warmup_epochs * steps_per_epoch), tc.epochs * steps_per_epoch)
    start = 0
    if resume and rd.has_checkpoint():
        # the data order and the schedule follow these: refuse a resume that would not continue it (--epochs may grow)
        state, meta = rd.load(device="cpu", expect={"model": MODEL_NAME, "head": config.head},
                              expect_if_stored=_resume_fields(tc, info))
        if PoseConfig.from_dict(meta["config"]) != config:
            raise ValueError(f"{rd.checkpoint_path} was trained with {meta['config']}, not {config.to_dict()}; "
                             "resume with the same model flags or use another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["epoch"])
        log(f"resuming {out} after epoch {start}")
    if info.is_main:
        rd.write_config({"model": config.to_dict(), "train": asdict(tc), "train_ann": str(train_ann),
                         "val_ann": str(val_ann), "device": str(device), "world_size": info.world_size})
    net = wrap_ddp(model, device, info, sync_bn=not tc.freeze_bn)
    for epoch in range(start, tc.epochs):
        net.train()
        if tc.freeze_bn:
            freeze_batchnorm(net)
        dataset.epoch = epoch
        sampler.set_epoch(epoch)
        # the sampler orders the samples; this generator only seeds the workers (and keeps the global RNG untouched)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=tc.workers, collate_fn=collate,
                            generator=torch.Generator().manual_seed(tc.seed * 1000 + epoch))
        sums: dict[str, float] = {}
        batches, unreadable, t0 = 0, 0, time.perf_counter()
        for batch in progress(loader, desc=f"epoch {epoch + 1}/{tc.epochs}", total=len(loader)):
            unreadable += batch["unreadable"]
            if any_rank("image" not in batch or len(batch["image"]) < 2, info):  # BatchNorm needs two samples
                continue
            out_ = net(batch["image"].to(device))
            weight = batch["weight"].to(device)
            terms = model.loss(out_, batch["keypoints"].to(device), weight)
            # every head's terms are means over labelled joints (weighted_mean): weigh ranks by their count
            factor = global_mean_factor(float(weight.sum().clamp(min=1.0)), info)
            opt.zero_grad(set_to_none=True)
            (terms["loss"] * factor).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * factor / info.world_size
            batches += 1
        names = sorted(sums)
        totals = all_reduce_sum(torch.tensor([sums[k] for k in names] + [unreadable], dtype=torch.float64), info)
        sums, unreadable = dict(zip(names, totals[:-1].tolist(), strict=True)), int(totals[-1])
        if info.is_main:
            val, _ = evaluate(model, val_set.samples, device, tc.batch_size, tc.workers)
            entry = {"epoch": epoch + 1, **{f"train_{k}": v / max(1, batches) for k, v in sums.items()},
                     "lr": sched.get_last_lr()[0], "seconds": time.perf_counter() - t0,
                     "skipped_train": dict(train_set.skipped), "unreadable_train": unreadable,
                     **{f"val_{k}": v for k, v in val.items()}}
            rd.log_epoch(entry)
            rd.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "epoch": epoch + 1},
                    {"model": MODEL_NAME, "head": config.head, "config": config.to_dict(), "epoch": epoch + 1,
                     **_resume_fields(tc, info)})
            log(f"epoch {epoch + 1}: loss {entry.get('train_loss', float('nan')):.4f}  val AP {val['AP']:.3f}  "
                f"PCK@0.1 {val['PCK@0.1']:.3f}  error {val['mean_error_px']:.2f}px")
        barrier(info)
    return rd.metrics if info.is_main else []
