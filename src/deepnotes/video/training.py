"""``deepnotes video train`` on the training engine (:mod:`deepnotes.core.engine`): a :class:`VideoTask` says
how the data, model, optimizer and schedule are built and how a batch of clips becomes a loss; the engine
runs the loop, alone or under ``torchrun --nproc_per_node N`` (DistributedDataParallel, gloo on CPU, nccl on
CUDA), and owns the run folder, resume and its refusals, skipped batches, the log and the checkpoints.

Models differ only through their registry entry (``MODELS.info(name)``): the ``modality`` their clips carry,
the train-config ``options`` they take (two-stream: stream, new_length, fusion) and the extra validation
``views`` (two-stream: each stream alone, ``model.view_model(view)``); every model defines its own
``model.loss(output, labels)``. Evaluation and prediction live in :mod:`deepnotes.video.evaluation`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, replace
from itertools import islice
from typing import Any

import torch
from torch import nn

from deepnotes.core import RunDir, pick_device, seed_everything
from deepnotes.core.distributed import DistInfo
from deepnotes.core.engine import Schedule, StepOutput, Trainer, TrainTask, check_fresh, distributed
from deepnotes.nn.pretrained import LoadReport
from deepnotes.optim import AdamW, cosine_with_warmup
from deepnotes.video.config import TrainConfig
from deepnotes.video.data import Batch, make_loader, set_epoch
from deepnotes.video.data.lists import read_list
from deepnotes.video.data.pipeline import class_names, data_meta, flip_map, make_dataset
from deepnotes.video.evaluation import evaluate, evaluate_loader, load_run, predict
from deepnotes.video.models import MODELS, build_model, init_from_2d

log = logging.getLogger("deepnotes.video")

# what a resumed run must share with its checkpoint (the engine adds the process count): the schedule is a
# step count and the data order follows the seed
RESUME_KEYS = ("batch_size", "lr", "weight_decay", "warmup_epochs", "seed")

__all__ = ["RESUME_KEYS", "VideoTask", "class_names", "evaluate", "evaluate_loader", "flip_map", "load_run",
           "make_dataset", "model_options", "predict", "train"]


def model_options(cfg: TrainConfig) -> dict[str, Any]:
    """The ``build_model`` options of ``cfg``: the shared ModelConfig fields plus the fields the model's
    registry entry names (``options``)."""
    options = {"num_segments": cfg.segments, "depth": cfg.depth, "width": cfg.width, "dropout": cfg.dropout,
               "stem_stride": cfg.resolved_stem_stride(), "input_size": cfg.input_size,
               "zero_init_residual": cfg.resolved_zero_init_residual()}
    return {**options, **{k: getattr(cfg, k) for k in MODELS.info(cfg.model)["options"]}}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and normalisation parameters (1-D tensors)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


class VideoTask(TrainTask):
    """One recogniser on a list of clips: AdamW with a cosine schedule after a linear warm-up, one period
    per epoch, validation every ``eval_every`` epochs (and after the last) when there is a validation list."""

    label = "train"

    def __init__(self, cfg: TrainConfig, info: DistInfo, device: torch.device) -> None:
        seed_everything(cfg.seed)
        modality = MODELS.info(cfg.model)["modality"]
        if modality != "rgb":  # the model's clips carry more than RGB (two_stream: RGB and flow)
            cfg = replace(cfg, modality=modality)
        self.cfg, self.info, self.device = cfg, info, device
        records = read_list(cfg.train, cfg.root, kind=cfg.list_format)
        self.classes = class_names(cfg, records)
        self.model = build_model(cfg.model, len(self.classes), **model_options(cfg))
        self.pretrained = self._pretrained()
        self.model.to(device)
        self._data()
        steps = len(self.train_loader)
        self.optimizer = AdamW(param_groups(self.model, cfg.weight_decay), lr=cfg.lr)
        self.schedule = Schedule.epochs(cfg.epochs, steps, cfg.eval_every)
        self.scheduler = cosine_with_warmup(self.optimizer, int(cfg.warmup_epochs * steps),
                                            self.schedule.total_steps)
        self.identity = {"model": cfg.model, "model_config": asdict(self.model.cfg), "classes": self.classes}
        self.resume_fields = {k: getattr(cfg, k) for k in RESUME_KEYS}
        self.config = {**cfg.to_dict(), "classes": self.classes}
        self.seed, self.freeze_bn = cfg.seed, cfg.freeze_bn
        self._placeholder: Batch | None = None

    def _pretrained(self) -> LoadReport | None:
        """Start the model from ``--pretrained`` 2D weights (not when resuming a checkpoint: it has them)."""
        cfg = self.cfg
        if cfg.pretrained is None or (cfg.resume and RunDir(cfg.out).has_checkpoint()):
            return None
        try:
            return init_from_2d(self.model, cfg.pretrained)
        except ValueError as exc:
            hint = ("; --stem-stride 1 builds a 3x3 stem, pretrained ResNets have a 7x7 one: pass "
                    "--stem-stride 2 or 4") if "stem.0.weight" in str(exc) else ""
            raise ValueError(f"--pretrained {exc}{hint}") from None

    def _data(self) -> None:
        cfg, info, k = self.cfg, self.info, len(self.classes)
        records = read_list(cfg.train, cfg.root, k, cfg.list_format)  # checks the label range
        self.train_set = make_dataset(cfg, records, True, label_map=flip_map(cfg, k))
        self.train_loader = make_loader(self.train_set, cfg.batch_size, True, cfg.workers, cfg.seed,
                                        info.rank, info.world_size, drop_last=True)
        if len(self.train_loader) == 0:
            raise ValueError(f"{cfg.train} has {len(records)} samples, fewer than one batch of "
                             f"{cfg.batch_size} x {info.world_size} processes; lower --batch-size")
        self.val_loader = None
        if cfg.val:
            val_set = make_dataset(cfg, read_list(cfg.val, cfg.root, k, cfg.list_format), False)
            self.val_loader = make_loader(val_set, cfg.batch_size, False, cfg.workers, cfg.seed, info.rank,
                                          info.world_size)

    def meta(self) -> dict[str, Any]:
        return {"data": data_meta(self.cfg)}

    def batches(self, period: int, first_step: int) -> Iterable[Batch]:
        epoch = period - 1  # the data order and augmentation are seeded by the 0-based epoch
        set_epoch(self.train_loader, epoch)
        return islice(self.train_loader, first_step - epoch * self.schedule.steps_per_epoch, None)

    def items(self, batch: Batch) -> int:
        return 0 if batch.clips is None else len(batch.labels)

    def skipped(self, batch: Batch) -> list[str]:
        return [str(self.train_set.records[i].path) for i in batch.skipped]

    def placeholder(self) -> Batch:
        """The first readable training clip as a batch of one: what a process that could read nothing in a
        step feeds DDP (with weight 0) while the others train."""
        for i in range(len(self.train_set) if self._placeholder is None else 0):
            item = self.train_set[i]
            if item is not None:
                self._placeholder = Batch(item["clip"][None], torch.tensor([item["label"]]), [i], [])
                break
        if self._placeholder is None:
            raise ValueError(f"no video of {self.cfg.train} could be read")
        return self._placeholder

    def loss(self, net: nn.Module, batch: Batch) -> StepOutput:
        clips, labels = batch.clips.to(self.device, non_blocking=True), batch.labels.to(self.device)
        out = net(clips)
        # each model defines its objective (cross-entropy; two_stream: one per stream), a mean over the clips
        return StepOutput(self.model.loss(out, labels), float(len(labels)))

    def validate(self, epoch: int) -> dict[str, Any]:
        """The model's metrics on the validation list, and each extra view's (two-stream: each stream alone);
        every process scores its share and the counts are summed."""
        if self.val_loader is None:
            return {}
        set_epoch(self.val_loader, 0)
        k = len(self.classes)
        res = evaluate_loader(self.model, self.val_loader, k, self.device, self.info, desc="val")
        entry = {key: res[key] for key in ("loss", "top1", "top5", "mean_class_acc")}
        entry["val_skipped"] = res["skipped"]
        if res["skipped"]:
            log.warning("epoch %d: skipped %d unreadable validation video(s)", epoch, res["skipped"])
        for view in MODELS.info(self.cfg.model)["views"]:
            res = evaluate_loader(self.model.view_model(view), self.val_loader, k, self.device, self.info,
                                  desc=f"val {view}")
            entry.update({f"{view}_top1": res["top1"], f"{view}_mean_class_acc": res["mean_class_acc"]})
        return entry

    def summary(self, entry: dict[str, Any]) -> str:
        line = f"epoch {entry['epoch']}: train loss {entry.get('train_loss', float('nan')):.4f}"
        if "top1" in entry:
            line += f"  top1 {entry['top1']:.3f}  top5 {entry['top5']:.3f}  mca {entry['mean_class_acc']:.3f}"
        views = [f"{v} {entry[f'{v}_top1']:.3f}" for v in MODELS.info(self.cfg.model)["views"]
                 if f"{v}_top1" in entry]
        if views:  # two_stream: each stream alone
            line += f"  ({', '.join(views)})"
        return line + f"  skipped {entry['train_skipped']}"


def train(cfg: TrainConfig, log_fn: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Train ``cfg.model`` on ``cfg.train``; returns the records written to ``OUT/metrics.json`` (one per
    epoch, ``epoch`` 1-based; empty on ranks other than 0). ``log_fn`` gets a line per epoch."""
    cfg.check()
    MODELS.info(cfg.model)  # an unknown model is refused before any data is read
    check_fresh(RunDir(cfg.out), cfg.resume)
    with distributed(pick_device(cfg.device)) as (info, device):
        task = VideoTask(cfg, info, device)
        if task.pretrained is not None and info.rank == 0 and log_fn is not None:
            log_fn(f"pretrained: {task.pretrained.summary()}")
        return Trainer(task, cfg.out, info, device, resume=cfg.resume, log_fn=log_fn).fit()
