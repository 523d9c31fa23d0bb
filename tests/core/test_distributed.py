"""Sharding helpers of core.distributed (what each rank reads); the trainers' DDP tests cover the rest."""

from __future__ import annotations

from deepnotes.core.distributed import DistInfo, ShardedBatchSampler, any_rank, global_mean_factor, shard


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
