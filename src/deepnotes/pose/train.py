"""Train a top-down pose model on the engine: AdamW + cosine schedule, validation, checkpoints, resume.

Runs alone or under ``torchrun --nproc_per_node N`` (``batch_size`` is per process): the engine shards every
global batch, weighs each process's loss by its labelled joints so the step is the one a single process
with the whole batch takes, and rank 0 validates and writes the run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from deepnotes.core import RunDir
from deepnotes.core.checkpoint import read_meta
from deepnotes.core.distributed import DistInfo, ShardedBatchSampler
from deepnotes.core.engine import Schedule, StepOutput, Trainer, TrainTask, check_fresh, distributed
from deepnotes.core.seed import seed_everything
from deepnotes.nn.pretrained import LoadReport, load_resnet
from deepnotes.optim import AdamW, cosine_with_warmup
from deepnotes.pose.config import PoseConfig, TrainConfig, run_config
from deepnotes.pose.data.coco import CocoKeypoints, load_coco
from deepnotes.pose.data.topdown import TopDownDataset, collate
from deepnotes.pose.evaluate import evaluate
from deepnotes.pose.model import PoseModel
from deepnotes.pose.transforms import Augment

MODEL_NAME = "pose"
__all__ = ["MODEL_NAME", "PoseTask", "TrainConfig", "load_pretrained", "load_run", "train"]


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


class PoseTask(TrainTask):
    """One pose model on COCO-style person crops; validated on rank 0 after each epoch."""

    grad_clip = 5.0
    min_items = 2  # BatchNorm in training mode needs two samples; a smaller global batch is skipped
    label = "pose"

    def __init__(self, train_set: CocoKeypoints, val_set: CocoKeypoints, config: PoseConfig, tc: TrainConfig,
                 device: torch.device, info: DistInfo, run_meta: dict[str, Any]) -> None:
        self.train_set, self.val_set, self.tc, self.device, self.info = train_set, val_set, tc, device, info
        self.seed, self.freeze_bn = tc.seed, tc.freeze_bn
        self.model = PoseModel(config).to(device)
        self.optimizer = AdamW(self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        self.dataset = TopDownDataset(train_set.samples, config.input_hw, Augment() if tc.augment else None,
                                      tc.seed, frame=config.frame, norm=config.norm)
        global_batch = tc.batch_size * info.world_size
        self.sampler = ShardedBatchSampler(len(self.dataset), tc.batch_size, True, tc.seed, info.rank,
                                           info.world_size, drop_last=len(self.dataset) > global_batch)
        steps = max(1, len(self.dataset) // global_batch)
        self.schedule = Schedule.epochs(tc.epochs, steps, tc.eval_every)
        self.scheduler = cosine_with_warmup(self.optimizer, int(tc.warmup_epochs * steps),
                                            self.schedule.total_steps)
        self.identity = {"model": MODEL_NAME, "head": config.head, "config": config.identity()}
        self.resume_fields = {k: getattr(tc, k) for k in ("batch_size", "lr", "weight_decay", "seed")}
        self.config = run_meta

    def batches(self, period: int, first_step: int):
        epoch = period - 1  # the sampler and the augmentation are seeded by the 0-based epoch
        self.dataset.epoch = epoch
        self.sampler.set_epoch(epoch)
        # the sampler orders the samples; this generator only seeds the workers (the global RNG stays
        # untouched)
        workers_seed = torch.Generator().manual_seed(self.tc.seed * 1000 + epoch)
        return DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=self.tc.workers,
                          collate_fn=collate, generator=workers_seed)

    def items(self, batch: dict) -> int:
        return len(batch["image"]) if "image" in batch else 0

    def skipped(self, batch: dict) -> list[str]:
        return batch["unreadable_paths"]

    def loss(self, net: nn.Module, batch: dict) -> StepOutput:
        weight = batch["weight"].to(self.device)
        keypoints = batch["keypoints"].to(self.device)
        terms = self.model.loss(net(batch["image"].to(self.device)), keypoints, weight)
        # every head's terms are means over the labelled joints (weighted_mean): ranks weigh by their count
        return StepOutput(terms["loss"], float(weight.sum().clamp(min=1.0)),
                          {k: float(v.detach()) for k, v in terms.items() if k != "loss"})

    def validate(self, epoch: int) -> dict[str, Any]:
        if not self.info.is_main:
            return {}
        val, _ = evaluate(self.model, self.val_set.samples, self.device, self.tc.batch_size, self.tc.workers,
                          ground_truth=self.val_set)
        return {f"val_{k}": v for k, v in val.items()}

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        # the annotations load_coco left out, and the older name of the unreadable-image count
        return {"skipped_train": dict(self.train_set.skipped), "unreadable_train": entry["train_skipped"]}

    def summary(self, entry: dict[str, Any]) -> str:
        line = f"epoch {entry['epoch']}: loss {entry.get('train_loss', float('nan')):.4f}"
        if "val_AP" in entry:
            line += (f"  val AP {entry['val_AP']:.3f}  PCK@0.1 {entry['val_PCK@0.1']:.3f}  "
                     f"error {entry['val_mean_error_px']:.2f}px")
        return line


def load_pretrained(model: PoseModel, source: str | Path) -> LoadReport:
    """Copy a pretrained ResNet's weights (``nn.pretrained.load_resnet``) into ``model``'s backbone, in
    place (an optimizer built on it keeps working)."""
    if model.config.norm != "imagenet":  # the weights expect the statistics they were trained with
        raise ValueError("a pretrained backbone takes ImageNet-normalised input: PoseConfig.norm must be "
                         f"'imagenet', not {model.config.norm!r}")
    return load_resnet(model.backbone, source)


def _datasets(train_ann, val_ann, images, val_images, log) -> tuple[CocoKeypoints, CocoKeypoints]:
    train_set = load_coco(train_ann, images)
    val_set = load_coco(val_ann, val_images if val_images is not None else images)
    log(train_set.summary())
    log(val_set.summary())
    if not train_set.samples:
        raise ValueError(f"{train_ann}: no usable person annotations to train on")
    if not val_set.samples:  # e.g. --images named the training folder and the val images live elsewhere
        raise ValueError(f"{val_ann}: no usable person annotations to validate on ({val_set.summary()}); "
                         "if its images are in another folder, pass --val-images")
    return train_set, val_set


def train(train_ann: str | Path, val_ann: str | Path, out: str | Path, config: PoseConfig, tc: TrainConfig,
          device: torch.device, images: str | Path | None = None, val_images: str | Path | None = None,
          resume: bool = False, log=print) -> list[dict]:
    """Train ``config`` on ``train_ann``, validating on ``val_ann``; returns the records of metrics.json
    (empty on ranks other than 0 under torchrun). ``tc.pretrained``: the backbone starts from that file
    (``config.norm`` must be ``imagenet``)."""
    if tc.batch_size < 1 or tc.epochs < 1:
        raise ValueError(f"batch size and epochs must be at least 1, got {tc.batch_size} and {tc.epochs}")
    with distributed(torch.device(device)) as (info, dev):
        say = log if info.is_main else (lambda _: None)
        check_fresh(RunDir(out), resume)
        seed_everything(tc.seed)
        train_set, val_set = _datasets(train_ann, val_ann, images, val_images, say)
        meta = run_config(train_ann, val_ann, out, config, tc, images, val_images, str(device))
        task = PoseTask(train_set, val_set, config, tc, dev, info, meta)
        if tc.pretrained is not None and not (resume and RunDir(out).has_checkpoint()):  # else: restored
            say(f"backbone from {load_pretrained(task.model, tc.pretrained).summary()}")
        return Trainer(task, out, info, dev, resume=resume, log_fn=say).fit()
