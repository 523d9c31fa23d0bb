"""DistributedDataParallel under torchrun: gloo on CPU, nccl on CUDA.

The same training script runs alone or under ``torchrun --nproc_per_node N``; these helpers read the
environment torchrun sets and do nothing when it is absent. Every trainer (video, pose, peft) uses them the
same way: ``--batch-size`` is per process, each process reads its share of every global batch
(:class:`ShardedBatchSampler` or :func:`shard`), DDP averages the gradients, rank 0 writes (video shares
evaluation and sums its counts; pose and peft evaluate on rank 0). A loss that is a mean over a varying
number of items (tokens, labelled joints) is rescaled with :func:`global_mean_factor`, so N processes take
exactly the step that one process with N times the batch takes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Start the process group when launched by torchrun (``WORLD_SIZE`` > 1); pick the backend by device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=process_group_backend(device))
    return info


def process_group_backend(device: torch.device) -> str:
    """gloo on CPU; on CUDA nccl for the model's tensors and gloo for the small CPU tensors the trainers
    reduce (skip flags, metric counts): a plain "nccl" group has no backend for CPU tensors."""
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """On CUDA each process takes the GPU of its local rank; on CPU all share the CPU."""
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return device


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over processes (identity when not distributed)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_lists(items: list, info: DistInfo) -> list:
    """Every rank's ``items`` concatenated in rank order, on every rank (``items`` when not distributed)."""
    if not info.enabled:
        return items
    parts: list[list | None] = [None] * info.world_size
    dist.all_gather_object(parts, items)
    return [x for part in parts for x in part or []]


def broadcast_buffers(model: nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics), e.g. before each rank evaluates its
    share: on CPU, without SyncBatchNorm, each rank's training steps move its own."""
    if info.enabled:
        for b in model.buffers():
            dist.broadcast(b, 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on some rank (all must skip a step together, or DDP hangs)."""
    if not info.enabled:
        return flag
    return all_reduce_sum(torch.tensor([float(flag)]), info).item() > 0


def global_mean_factor(local_count: float, info: DistInfo) -> float:
    """Scale for a per-rank loss that is a mean over ``local_count`` items (tokens, labelled joints).

    DDP averages gradients over ranks, which weighs every rank alike however many items it holds; times
    this factor (``local_count * world / total count``) the average is the gradient of the mean over all
    items of the global batch, as one process would compute it. 1.0 when not distributed."""
    if not info.enabled:
        return 1.0
    total = all_reduce_sum(torch.tensor([float(local_count)], dtype=torch.float64), info).item()
    return local_count * info.world_size / max(total, 1e-12)


def shard(items: list, info: DistInfo) -> list:
    """This rank's contiguous share of a global batch of ``per_rank * world_size`` items (rank order)."""
    per = len(items) // info.world_size
    return items[info.rank * per:(info.rank + 1) * per]


def freeze_batchnorm(model: nn.Module) -> None:
    """BatchNorm layers use (and keep) their running statistics. On CPU, where there is no SyncBatchNorm,
    this is what makes N processes compute what one process computes."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def wrap_ddp(model: nn.Module, device: torch.device, info: DistInfo, sync_bn: bool = True) -> nn.Module:
    """``model`` in DistributedDataParallel when distributed (itself otherwise). On CUDA, BatchNorm becomes
    SyncBatchNorm (statistics over the global batch) unless ``sync_bn`` is false; the returned module
    shares parameters with ``model``, so save and evaluate ``model``."""
    if not info.enabled:
        return model
    if device.type == "cuda" and sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(model,
                                               device_ids=[device.index] if device.type == "cuda" else None)


class ShardedBatchSampler(Sampler[list[int]]):
    """Batches for one rank. Each global batch of ``batch_size * world_size`` samples (from a permutation
    seeded by (seed, epoch) when shuffling) is split in rank order, so N processes with batch B see
    exactly the samples that one process with batch N*B sees. Training drops the last incomplete batch so
    every rank runs the same number of steps; evaluation keeps everything (ranks take strided shares)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False) -> None:
        self.n, self.bs, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world, self.drop_last, self.epoch = rank, world_size, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> np.ndarray:
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch, 7]).permutation(self.n)
        return np.arange(self.n)

    def __iter__(self) -> Iterator[list[int]]:
        order, g = self._order(), self.bs * self.world
        if self.drop_last:
            for s in range(0, self.n - g + 1, g):
                yield order[s + self.rank * self.bs: s + (self.rank + 1) * self.bs].tolist()
        else:
            mine = order[self.rank::self.world]
            for s in range(0, len(mine), self.bs):
                yield mine[s:s + self.bs].tolist()

    def __len__(self) -> int:
        if self.drop_last:
            return self.n // (self.bs * self.world)
        mine = len(range(self.rank, self.n, self.world))
        return -(-mine // self.bs)
