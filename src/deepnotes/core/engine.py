"""The training engine: one loop for every trainer (video, pose, peft fine-tuning and pre-training).

A trainer builds a :class:`TrainTask` (its data, model, optimizer, schedule and how one batch becomes a loss)
and hands it to :class:`Trainer`, which owns everything the trainers used to write each on their own:

- the run folder: refuse an existing checkpoint without ``--resume``; on resume refuse a checkpoint whose
  identity (model, method, head...) or schedule-defining fields (batch size, lr, seed, process count...)
  differ, naming the flag; write ``config.json``; log one record per period; write the checkpoint
  atomically after the record (a crash between the two reruns that period on resume);
- DistributedDataParallel under torchrun: wrap the model, make every rank skip a global batch together,
  weigh each rank's mean loss by its share of the items (:func:`global_mean_factor`), give a rank without
  a usable item a zero-weight placeholder, broadcast rank 0's BatchNorm statistics before validation;
- RNG: rank 0 keeps the stream its seed started, other ranks get their own; every rank's torch state is
  stored in each checkpoint and restored on resume, so a resumed run draws what an uninterrupted one does;
- the log: every record has ``epoch`` (1-based, passes over the data) and ``step`` (global, 1-based count of
  steps taken), ``train_loss`` and the task's other loss terms (means over the global batch, averaged over
  the period's steps), ``train_skipped`` (items that could not be read), ``lr``, ``seconds``, and the
  validation metrics when validated;
- progress bars, gradient clipping, a wall-clock limit.

A period is the run between two checkpoints: an epoch for video and pose, ``save_every`` steps for peft.
"""

from __future__ import annotations

import json
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepnotes.core.checkpoint import read_meta
from deepnotes.core.distributed import (
    DistInfo,
    all_reduce_sum,
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
from deepnotes.core.progress import progress
from deepnotes.core.rundir import RunDir, flag_name
from deepnotes.core.seed import set_torch_rng_state, torch_rng_state

log = logging.getLogger("deepnotes.engine")

ENGINE_VERSION = 1  # in every checkpoint's meta; checkpoints without it predate the engine
MAX_NAMED_SKIPS = 100  # skipped items named in a record (all are counted)


@dataclass
class Schedule:
    """How long a run is and how it is cut.

    ``total_steps``: optimizer steps of the whole run; ``period_steps``: steps between checkpoints (and log
    records); ``steps_per_epoch``: steps of one pass over the training data (what a record's ``epoch``
    counts); ``eval_every``: validate every this many periods (and after the last)."""

    total_steps: int
    period_steps: int
    steps_per_epoch: int
    eval_every: int = 1

    def __post_init__(self) -> None:
        for name in ("total_steps", "period_steps", "steps_per_epoch", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def epochs(cls, epochs: int, steps_per_epoch: int, eval_every: int = 1) -> Schedule:
        """One period per epoch (video, pose)."""
        return cls(epochs * steps_per_epoch, steps_per_epoch, steps_per_epoch, eval_every)

    def epoch_of(self, step: int) -> int:
        """The 1-based epoch that global step ``step`` (1-based) falls in; 0 before the first step."""
        return math.ceil(step / self.steps_per_epoch)

    @property
    def periods(self) -> int:
        return math.ceil(self.total_steps / self.period_steps)


@dataclass
class StepOutput:
    """What :meth:`TrainTask.loss` returns for one batch on one rank.

    ``loss``: a mean over this rank's ``weight`` items (clips, labelled joints, target tokens), the tensor
    to differentiate; ``terms``: other scalars to log (means over the same items), e.g. an RLE loss's
    parts."""

    loss: torch.Tensor
    weight: float
    terms: dict[str, float] | None = None


class TrainTask(ABC):
    """What a trainer supplies to :class:`Trainer`. Set the attributes, override the hooks.

    Attributes: ``model`` (the module to train and save), ``optimizer``, ``scheduler`` (stepped once per
    global batch, skipped ones included), ``schedule`` (:class:`Schedule`), ``identity`` (meta that a resumed
    checkpoint must equal: model name and config, method, head...), ``resume_fields`` (settings the data
    order and schedule follow: a resume must keep them; the process count is added), ``config`` (written to
    ``config.json``), ``seed``, ``grad_clip`` (max gradient norm or None), ``freeze_bn`` (BatchNorm keeps its
    running statistics), ``sync_bn`` (SyncBatchNorm under DDP on CUDA), ``min_items`` (a rank needs this many
    usable items in a batch to take part)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    schedule: Schedule
    identity: dict[str, Any]
    resume_fields: dict[str, Any]
    config: dict[str, Any]
    seed: int = 0
    grad_clip: float | None = None
    freeze_bn: bool = False
    sync_bn: bool = True
    min_items: int = 1
    label: str = "train"

    @abstractmethod
    def batches(self, period: int, first_step: int) -> Iterable[Any]:
        """This rank's batches from global step ``first_step`` (0-based) on, for 1-based ``period``; the
        engine takes as many as the period has steps."""

    @abstractmethod
    def loss(self, net: nn.Module, batch: Any) -> StepOutput:
        """Forward ``batch`` through ``net`` (the DDP-wrapped model) and return the loss."""

    def items(self, batch: Any) -> int:
        """Usable items of ``batch`` on this rank (0: nothing could be read)."""
        return len(batch)

    def skipped(self, batch: Any) -> list[str]:
        """Names of the items of ``batch`` that could not be read (skipped, counted and named)."""
        return []

    def placeholder(self) -> Any | None:
        """A batch this rank feeds DDP with weight 0 when it has no usable item but other ranks do; None:
        the whole global batch is skipped instead."""
        return None

    def validate(self, epoch: int) -> dict[str, Any]:
        """Validation metrics after ``epoch``; called on every rank (rank 0's record keeps its result)."""
        return {}

    def model_state(self) -> dict[str, torch.Tensor]:
        """The model tensors a checkpoint keeps (peft: the trained ones only)."""
        return self.model.state_dict()

    def load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)

    def state(self) -> dict[str, Any]:
        """Further state to checkpoint (e.g. a data-order generator)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned (tasks without state of their own ignore it)."""
        del state

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Extra fields for a period's record (rank 0)."""
        return {}

    def meta(self) -> dict[str, Any]:
        """More checkpoint meta for the run's readers (how eval samples clips...); not compared on resume."""
        return {}

    def summary(self, entry: dict[str, Any]) -> str | None:
        """A console line for a period's record (rank 0), or None."""
        return None


@contextmanager
def distributed(device: torch.device) -> Iterator[tuple[DistInfo, torch.device]]:
    """Start the process group when launched by torchrun; yields (info, this process's device)."""
    info = init_distributed(device)
    try:
        yield info, local_device(device, info)
    finally:
        cleanup(info)


def check_fresh(run: RunDir, resume: bool) -> None:
    """Refuse to train into a folder holding a checkpoint unless resuming it."""
    if run.has_checkpoint() and not resume:
        raise FileExistsError(f"{run.checkpoint_path} exists; pass --resume to continue it "
                              "or use another --out")


def process_rng(seed: int, info: DistInfo, saved: dict | None = None) -> None:
    """Torch's global RNG (dropout masks) for this process: restored from a checkpoint's ``rng_ranks`` (or,
    for rank 0 of an older checkpoint, its ``rng``), else rank 0 keeps the stream ``seed_everything(seed)``
    started and every other rank gets its own seed: one seed everywhere gives every process the same masks."""
    state = None
    if saved:
        state = saved.get("rng_ranks", {}).get(str(info.rank), saved.get("rng") if info.rank == 0 else None)
    if state is not None:
        set_torch_rng_state(state)
    elif info.rank:
        torch.manual_seed(seed + 1_000_003 * info.rank)


def describe_mismatch(key: str, stored: Any, wanted: Any) -> str:
    """``key=stored, not wanted``; for dicts (a model config) only the entries that differ."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        parts = ", ".join(f"{k}={stored.get(k)!r} (now {wanted.get(k)!r})" for k in diff)
        return f"{key} with {parts}"
    return f"{key}={stored!r}, not {wanted!r}"


def as_json(value: Any) -> Any:
    """``value`` as it reads back from a checkpoint's JSON meta (tuples become lists, Paths strings)."""
    return json.loads(json.dumps(value, default=str))


class Trainer:
    """Runs a :class:`TrainTask` to the end of its schedule (or ``time_limit_s``), resuming when asked."""

    def __init__(self, task: TrainTask, run: RunDir | str | Path, info: DistInfo, device: torch.device,
                 resume: bool = False, time_limit_s: float | None = None,
                 log_fn: Callable[[str], None] | None = None) -> None:
        self.task, self.info, self.device = task, info, device
        self.run = run if isinstance(run, RunDir) else RunDir(run)
        self.resume, self.time_limit_s = resume, time_limit_s
        self.log_fn = log_fn if info.is_main else None
        self.step = 0
        self.losses: list[float] = []  # the global mean loss of every step (NaN for skipped ones)
        self.stopped_early = False

    # --- resume ---------------------------------------------------------------------------------------
    @property
    def fields(self) -> dict[str, Any]:
        return {**self.task.resume_fields, "world_size": self.info.world_size}

    def _check_meta(self, meta: dict[str, Any]) -> None:
        path = self.run.checkpoint_path
        if meta.get("engine") is None:
            raise ValueError(f"{path} was written by an older deepnotes (before the training engine) and "
                             "cannot be resumed; eval and predict still read it. Train into another --out")
        for key, want in self.task.identity.items():
            want = as_json(want)  # the meta went through JSON: tuples came back as lists
            if meta.get(key) != want:
                hint = "the same model flags" if isinstance(want, dict) else f"the matching {flag_name(key)}"
                raise ValueError(f"{path} was written for {describe_mismatch(key, meta.get(key), want)}; "
                                 f"use another --out or {hint}")
        for key, want in as_json(self.fields).items():
            if key in meta and meta[key] != want:
                raise ValueError(f"{path} was written for {key}={meta[key]!r}, not {want!r}; resuming "
                                 "with another value would not continue that run: use another --out or the "
                                 f"matching {flag_name(key)}")

    def _restore(self) -> dict | None:
        """Load the checkpoint into the task when resuming; returns the stored RNG states."""
        check_fresh(self.run, self.resume)
        if not (self.resume and self.run.has_checkpoint()):
            return None
        self._check_meta(read_meta(self.run.checkpoint_path))
        state, meta = self.run.load(str(self.device))
        self.task.load_model_state(state["model"])
        self.task.optimizer.load_state_dict(state["optimizer"])
        self.task.scheduler.load_state_dict(state["scheduler"])
        self.task.load_state(state.get("task", {}))
        self.step = int(meta["step"])
        self.losses = [float(x) for x in state["losses"].tolist()] if "losses" in state else []
        self.run.drop_after(self.step)  # records of a period whose checkpoint was never written
        if self.log_fn:
            self.log_fn(f"resuming {self.run.path} after step {self.step} (epoch {meta.get('epoch')})")
        return {k: state[k] for k in ("rng", "rng_ranks") if k in state}

    # --- the loop -------------------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train to the end of the schedule; returns the records (rank 0; ``[]`` on other ranks)."""
        task, info = self.task, self.info
        rng = self._restore()
        process_rng(task.seed, info, rng)
        if info.is_main:
            self.run.write_config({**task.config, "world_size": info.world_size})
        self.net = wrap_ddp(task.model, self.device, info, sync_bn=task.sync_bn and not task.freeze_bn)
        self.params = [p for p in task.model.parameters() if p.requires_grad]
        self.t_start = time.perf_counter()
        schedule = task.schedule
        while self.step < schedule.total_steps and not self.stopped_early:
            self._period(self.step // schedule.period_steps + 1)
        return self.run.metrics if info.is_main else []

    def _train_mode(self) -> None:
        self.net.train()
        if self.task.freeze_bn:
            freeze_batchnorm(self.net)

    def _period(self, period: int) -> None:
        task, schedule = self.task, self.task.schedule
        first = self.step
        n = min(schedule.period_steps * period, schedule.total_steps) - first
        sums: dict[str, float] = {}
        skipped: list[str] = []
        trained, t0 = 0, time.perf_counter()
        self._train_mode()
        batches = islice(iter(task.batches(period, first)), n)
        step_losses: list[float] = []  # this rank's share of each step's global mean loss (NaN: skipped)
        for batch in progress(batches, desc=self._desc(period), total=n):
            skipped += task.skipped(batch)
            terms = self._step(batch)
            self.step += 1
            step_losses.append(float("nan") if terms is None else terms["loss"])
            if terms is not None:
                trained += 1
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
            if self._out_of_time():
                self.stopped_early = self.step < schedule.total_steps
                break
        if self.step < first + n and not self.stopped_early:  # else the next period would start here again
            raise RuntimeError(f"{task.label}: batches() gave {self.step - first} batches for a period of "
                               f"{n} steps; the schedule's steps per epoch must match the data")
        self.losses += all_reduce_sum(torch.tensor(step_losses, dtype=torch.float64), self.info).tolist()
        self._end_period(period, sums, trained, skipped, time.perf_counter() - t0)

    def _out_of_time(self) -> bool:
        if self.time_limit_s is None:
            return False
        late = time.perf_counter() - self.t_start > self.time_limit_s
        return self._count_ranks(late) > 0  # all ranks stop at the same step

    def _desc(self, period: int) -> str:
        s = self.task.schedule
        if s.period_steps == s.steps_per_epoch:
            return f"{self.task.label} epoch {period}/{s.periods}"
        last = min(period * s.period_steps, s.total_steps)
        return f"{self.task.label} steps {self.step + 1}-{last}/{s.total_steps}"

    def _step(self, batch: Any) -> dict[str, float] | None:
        """One optimizer step on the global batch; this rank's share of the logged terms (their sum over
        ranks is the global mean), or None when every rank skips the batch."""
        task, info = self.task, self.info
        usable = task.items(batch) >= task.min_items
        ready = self._count_ranks(usable)
        placeholder = None
        if ready < info.world_size:
            placeholder = None if usable or not ready else task.placeholder()
            # a rank without a usable batch takes part with a placeholder; if one cannot, all skip together
            if not ready or self._count_ranks(usable or placeholder is not None) < info.world_size:
                task.scheduler.step()  # the schedule counts global batches, skipped ones too
                return None
        if placeholder is not None:
            # DDP needs every rank in the step: this one feeds a usable batch with weight 0, BatchNorm and
            # dropout in eval mode (no statistics move)
            batch = placeholder
            self.net.eval()
        out = task.loss(self.net, batch)
        factor = global_mean_factor(0.0 if placeholder is not None else float(out.weight), info)
        task.optimizer.zero_grad(set_to_none=True)
        (out.loss * factor).backward()
        if task.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, task.grad_clip)
        task.optimizer.step()
        task.scheduler.step()
        if placeholder is not None:
            self._train_mode()
        share = factor / info.world_size
        terms = {"loss": float(out.loss.detach()), **(out.terms or {})}
        return {k: v * share for k, v in terms.items()}

    def _count_ranks(self, flag: bool) -> int:
        """How many ranks have ``flag`` set (every rank must call it, and gets the same answer)."""
        return int(all_reduce_sum(torch.tensor([float(flag)]), self.info).item())

    def _end_period(self, period: int, sums: dict[str, float], trained: int, skipped: list[str],
                    seconds: float) -> None:
        task, info, schedule = self.task, self.info, self.task.schedule
        names = sorted(sums)
        totals = all_reduce_sum(torch.tensor([sums[k] for k in names], dtype=torch.float64), info).tolist()
        skipped = gather_lists(skipped, info)
        means = {f"train_{k}": v / max(trained, 1) for k, v in zip(names, totals, strict=True)}
        entry: dict[str, Any] = {"epoch": schedule.epoch_of(self.step), "step": self.step, **means,
                                 "train_steps": trained, "train_skipped": len(skipped),
                                 "lr": task.scheduler.get_last_lr()[0], "seconds": round(seconds, 2)}
        if skipped:
            entry["train_skipped_items"] = skipped[:MAX_NAMED_SKIPS]
            log.warning("steps %d-%d: skipped %d unreadable training item(s): %s", self.step - trained + 1,
                        self.step, len(skipped), ", ".join(skipped[:5]) + (" ..." * (len(skipped) > 5)))
        last = self.step >= schedule.total_steps or self.stopped_early
        if period % schedule.eval_every == 0 or last:
            # every rank validates the weights rank 0 saves, BatchNorm statistics included (each rank's last
            # training step moved its own)
            broadcast_buffers(task.model, info)
            entry.update(task.validate(entry["epoch"]))
        rng_ranks = gather_lists([torch_rng_state()], info)  # every rank's dropout stream, for a resume
        if info.is_main:
            entry.update(task.record(entry))
            # the record first: a crash between the two reruns this period on resume, and the rerun's record
            # replaces this one (records are keyed by step)
            self.run.log_epoch(entry)
            self.run.save({"model": task.model_state(), "optimizer": task.optimizer.state_dict(),
                           "scheduler": task.scheduler.state_dict(), "task": task.state(),
                           "rng_ranks": {str(r): s for r, s in enumerate(rng_ranks)},
                           "losses": torch.tensor(self.losses, dtype=torch.float64)},
                          {"engine": ENGINE_VERSION, "epoch": entry["epoch"], "step": self.step,
                           **task.meta(), **task.identity, **self.fields})
            line = task.summary(entry)
            if line and self.log_fn:
                self.log_fn(line)
        barrier(info)
