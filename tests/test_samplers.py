"""BucketBatchSampler: length buckets, seeded epochs, and sharding across DDP processes."""

from __future__ import annotations

import numpy as np
import pytest
from lightning_fabric.utilities.data import _set_sampler_epoch
from pytorch_lightning.trainer.states import RunningStage
from pytorch_lightning.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DistributedSampler

from speechexp.data.emotion_datamodule import EmotionSpeechDataModule
from speechexp.data.samplers import BucketBatchSampler, EpochSampler
from tests.test_emotion_datamodule import EMOTIONS, make_dataset

LENGTHS = list(np.random.default_rng(1).uniform(1, 10, size=403))


def sampler(**kwargs) -> BucketBatchSampler:
    options = {"lengths": LENGTHS, "shuffle": True, "seed": 0, "pool_batches": 10, **kwargs}
    return BucketBatchSampler(range(len(options["lengths"])), 8, **options)


def spread(batches) -> float:
    return float(np.mean([np.ptp([LENGTHS[i] for i in b]) for b in batches]))


def test_buckets_group_lengths_and_epochs_reshuffle_with_the_seed():
    s = sampler()
    epoch0 = list(s)
    s.set_epoch(1)
    epoch1 = list(s)
    for batches in (epoch0, epoch1):
        assert sorted(i for b in batches for i in b) == list(range(403)) and len(batches) == len(s) == 51
    assert epoch0 != epoch1
    random_spread = np.mean([np.ptp(LENGTHS[i: i + 8]) for i in range(0, 400, 8)])
    assert spread(epoch0) < random_spread / 4
    s.set_epoch(0)
    assert list(s) == epoch0  # same seed and epoch, same order (a resumed run repeats it)
    assert list(sampler(seed=1)) != epoch0
    fixed = [i for b in sampler(shuffle=False) for i in b]
    assert [LENGTHS[i] for i in fixed] == sorted(LENGTHS)
    assert len(list(sampler(lengths=LENGTHS[:20], shuffle=False, drop_last=True))) == 2


@pytest.mark.parametrize("replicas", [2, 3])
def test_training_shards_are_disjoint_equal_and_cover_every_batch(replicas):
    for epoch in (0, 1):
        whole = sampler()
        whole.set_epoch(epoch)
        all_batches = whole.epoch_batches()
        shares = []
        for rank in range(replicas):
            s = sampler(num_replicas=replicas, rank=rank)
            s.set_epoch(epoch)
            shares.append(list(s))
            assert len(shares[-1]) == len(s) == -(-len(all_batches) // replicas)
        # every batch of the epoch is used; only the padding that evens out the steps repeats one
        used = [tuple(b) for share in shares for b in share]
        assert set(used) == {tuple(b) for b in all_batches}
        assert len(used) - len(all_batches) == -len(all_batches) % replicas
        unpadded = [tuple(b) for share in shares for b in share[: len(all_batches) // replicas]]
        assert len(set(unpadded)) == len(unpadded)  # disjoint
        assert spread([b for share in shares for b in share]) < spread(all_batches) * 1.01


@pytest.mark.parametrize("replicas", [2, 3])
def test_evaluation_shards_hold_each_item_exactly_once(replicas):
    shares = [[i for b in sampler(shuffle=False, num_replicas=replicas, rank=r) for i in b] for r in range(replicas)]
    assert sorted(i for share in shares for i in share) == list(range(403))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert [len(list(sampler(shuffle=False, num_replicas=replicas, rank=r))) for r in range(replicas)] == \
        [len(sampler(shuffle=False, num_replicas=replicas, rank=r)) for r in range(replicas)]


def test_lightning_ddp_recreation_keeps_lengths_and_shards(tmp_path):
    """Recreate the train loader as Lightning does under DDP for 2 ranks: the ranks see
    disjoint halves of the training split, not the same half twice."""
    from lightning_fabric.utilities.data import _replace_dunder_methods  # noqa: PLC0415
    from torch.utils.data import DataLoader  # noqa: PLC0415

    make_dataset(tmp_path, n=40)
    dm = EmotionSpeechDataModule(tmp_path, batch_size=2, n_mels=16, emotions=EMOTIONS)
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = dm.train_dataloader()  # Lightning records the constructor arguments like this
    train = dm.dataset("train")
    seen = []
    for rank in range(2):
        distributed = DistributedSampler(train, num_replicas=2, rank=rank, shuffle=True)
        recreated = _update_dataloader(loader, distributed, mode=RunningStage.TRAINING)
        assert recreated.batch_sampler.lengths == train.lengths()
        seen.append([i for batch in recreated.batch_sampler for i in batch])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(len(train)))
    # the epoch Lightning sets on the DistributedSampler reaches the batch order
    epochs = []
    for epoch in (0, 1):
        _set_sampler_epoch(recreated, epoch)
        epochs.append(list(recreated.batch_sampler))
    assert epochs[0] != epochs[1] and sorted(map(sorted, epochs[0])) != sorted(map(sorted, epochs[1]))


def test_lightning_sets_the_epoch_so_every_epoch_is_shuffled_anew(tmp_path):
    """Lightning calls set_epoch on a loader's sampler and its batch sampler's sampler, not on
    the batch sampler: the datamodule's loader still gets a new order every epoch (it once
    repeated epoch 0's batches for the whole run)."""
    make_dataset(tmp_path, n=40)
    dm = EmotionSpeechDataModule(tmp_path, batch_size=2, n_mels=16, emotions=EMOTIONS)
    loader, n = dm.train_dataloader(), len(dm.dataset("train"))
    orders = []
    for epoch in (0, 1, 2):
        _set_sampler_epoch(loader, epoch)  # what the fit loop does before each epoch
        orders.append(list(loader.batch_sampler))
    assert orders[0] != orders[1] != orders[2] != orders[0]
    assert all(sorted(i for b in order for i in b) == list(range(n)) for order in orders)
    _set_sampler_epoch(loader, 1)
    assert list(loader.batch_sampler) == orders[1]  # a resumed epoch repeats its order


def test_a_warm_up_pool_fills_the_first_epochs_and_keeps_their_length():
    pool = list(range(0, 403, 3))  # e.g. the clean recordings
    plain = sampler()
    s = BucketBatchSampler(EpochSampler(403), 8, lengths=LENGTHS, seed=0, pool_batches=10,
                           warmup_indices=pool, warmup_epochs=2)
    for epoch in (0, 1):
        s.set_epoch(epoch)
        items = [i for b in s for i in b]
        assert len(items) == 403 and len(list(s)) == len(s) == len(plain)
        assert set(items) == set(pool)  # only the pool, each of its items at least once
        assert max(items.count(i) for i in pool) - min(items.count(i) for i in pool) <= 1
    s.set_epoch(2)
    assert sorted(i for b in s for i in b) == list(range(403))
    s.sampler.set_epoch(0)  # the epoch Lightning sets on the sampler counts
    assert set(i for b in s for i in b) == set(pool)
    with pytest.raises(ValueError, match="warmup_indices"):
        BucketBatchSampler(range(5), 2, lengths=[1.0] * 5, warmup_indices=[7], warmup_epochs=1)
