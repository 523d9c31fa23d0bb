"""Sharding helpers of core.distributed (what each rank reads); the trainers' DDP tests cover the rest."""

from __future__ import annotations

import torch
import torch.distributed as dist

from deepnotes.core.distributed import (
    DistInfo,
    ShardedBatchSampler,
    any_rank,
    global_mean_factor,
    process_group_backend,
    shard,
)


def _batches(n, bs, shuffle, rank, world, drop_last, epoch=0):
    s = ShardedBatchSampler(n, bs, shuffle, seed=4, rank=rank, world_size=world, drop_last=drop_last)
    s.set_epoch(epoch)
    assert len(list(s)) == len(s)
    return list(s)


def test_two_ranks_read_what_one_rank_with_double_batch_reads():
    one = _batches(23, 6, True, 0, 1, True, epoch=2)
    r0, r1 = _batches(23, 3, True, 0, 2, True, epoch=2), _batches(23, 3, True, 1, 2, True, epoch=2)
    assert len(one) == len(r0) == len(r1) == 3
    assert [a + b for a, b in zip(r0, r1, strict=True)] == one
    assert _batches(23, 6, True, 0, 1, True, epoch=3) != one  # a new order each epoch


def test_evaluation_shares_cover_every_sample_once():
    seen = [i for rank in range(3) for b in _batches(10, 4, False, rank, 3, False) for i in b]
    assert sorted(seen) == list(range(10))


def test_shard_splits_a_global_batch_in_rank_order():
    items = list(range(8))
    assert shard(items, DistInfo(0, 2)) + shard(items, DistInfo(1, 2)) == items
    assert shard(items, DistInfo()) == items


def test_single_process_is_the_identity():
    assert global_mean_factor(17.0, DistInfo()) == 1.0
    assert any_rank(True, DistInfo()) and not any_rank(False, DistInfo())


def test_cuda_group_has_a_backend_for_the_cpu_tensors_the_trainers_reduce():
    # any_rank and the metric sums reduce CPU tensors; a plain "nccl" group maps only cuda and fails there
    plain = dist.distributed_c10d.BackendConfig(dist.Backend("nccl")).get_device_backend_map()
    assert "cpu" not in plain
    cuda = dist.distributed_c10d.BackendConfig(dist.Backend(process_group_backend(torch.device("cuda"))))
    assert cuda.get_device_backend_map() == {"cpu": "gloo", "cuda": "nccl"}
    assert process_group_backend(torch.device("cpu")) == "gloo"


def _gather_worker(rank: int, store_file: str, out_dir: str) -> None:
    import json
    from pathlib import Path

    from deepnotes.core.distributed import gather_lists

    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=2)
    info = DistInfo(rank, 2, rank)
    got = gather_lists([f"bad-{rank}.mp4"] * (rank + 1), info)  # rank 0 skipped one video, rank 1 two
    Path(out_dir, f"{rank}.json").write_text(json.dumps({"paths": got, "any": any_rank(rank == 1, info)}))
    dist.destroy_process_group()


def test_gather_lists_collects_every_rank_in_rank_order(tmp_path):
    import json

    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        res = json.loads((tmp_path / f"{rank}.json").read_text())
        assert res == {"paths": ["bad-0.mp4", "bad-1.mp4", "bad-1.mp4"], "any": True}
