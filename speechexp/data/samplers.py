"""Length-bucketed batching that shards correctly across distributed processes."""

from __future__ import annotations

import random
from typing import Iterable, Iterator, Sequence

from torch.utils.data import BatchSampler, DistributedSampler, Sampler


class EpochSampler(Sampler[int]):
    """The items ``0 .. n-1`` in order, holding the epoch that Lightning sets.

    Lightning calls ``set_epoch`` on a loader's ``sampler`` and on its batch sampler's
    ``sampler``, never on the batch sampler itself: a :class:`BucketBatchSampler` built on
    this one reads its epoch from here, so every epoch gets its own shuffle (under DDP the
    ``DistributedSampler`` that Lightning puts in its place carries the epoch the same way).
    """

    def __init__(self, n: int) -> None:
        self.n, self.epoch = int(n), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


class BucketBatchSampler(BatchSampler):
    """Batches of dataset indices with similar lengths; under DDP each process gets its share.

    Training (``shuffle=True``): each epoch shuffles all indices (seeded by ``seed`` and the
    epoch, so every process computes the same order), cuts them into pools of
    ``batch_size * pool_batches``, sorts each pool by length, cuts pools into batches and
    shuffles the batch order. Process ``rank`` of ``num_replicas`` takes batches
    ``rank, rank + num_replicas, ...``: shares are disjoint, their union is the split, and
    the batch list is first padded by repeating its first batches so that every process
    runs the same number of steps (DDP needs that).

    Evaluation (``shuffle=False``): indices sorted by length; process ``rank`` takes every
    ``num_replicas``-th of them (each item exactly once, so synced metrics equal a single
    process's), then cuts its share into batches.

    Args:
        sampler: the sampler this replaces; consulted for sharding and the epoch. Lightning
            re-creates batch samplers under DDP with a ``DistributedSampler`` here, whose
            ``num_replicas``, ``rank`` and ``epoch`` are then used. When not distributed an
            :class:`EpochSampler` (Lightning sets its epoch) or any iterable (e.g. ``range(n)``;
            then only :meth:`set_epoch` changes the epoch).
        batch_size: indices per batch (the last of a pool may be smaller unless ``drop_last``).
        drop_last: drop batches smaller than ``batch_size``.
        lengths: length of each dataset item ``[items]``, e.g. durations in seconds.
        shuffle, seed, pool_batches: see above.
        num_replicas, rank: explicit sharding (default: from a ``DistributedSampler`` passed
            as ``sampler``, else 1 and 0).
        warmup_indices, warmup_epochs: a curriculum. In the first ``warmup_epochs`` epochs
            (training only) every item is drawn from ``warmup_indices`` (e.g. the clean
            recordings): each of them once, the rest of the epoch filled with others of them
            drawn at random, so an epoch keeps its number of batches (a per-step learning-rate
            schedule sized from the first epoch stays right).
    """

    def __init__(self, sampler: Sampler | Iterable[int], batch_size: int, drop_last: bool = False, *,
                 lengths: Sequence[float], shuffle: bool = True, seed: int = 0, pool_batches: int = 50,
                 num_replicas: int | None = None, rank: int | None = None,
                 warmup_indices: Sequence[int] | None = None, warmup_epochs: int = 0) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.sampler, self.batch_size, self.drop_last = sampler, int(batch_size), bool(drop_last)
        self.lengths = list(lengths)
        self.shuffle, self.seed, self.pool_batches = bool(shuffle), int(seed), max(1, int(pool_batches))
        distributed = sampler if isinstance(sampler, DistributedSampler) else None
        self.num_replicas = int(num_replicas or (distributed.num_replicas if distributed else 1))
        self.rank = int(rank if rank is not None else (distributed.rank if distributed else 0))
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"rank must be in [0, {self.num_replicas}), got {self.rank}")
        self.epoch = 0
        self.warmup_indices = [int(i) for i in warmup_indices or []]
        self.warmup_epochs = int(warmup_epochs) if self.warmup_indices else 0
        if any(not 0 <= i < len(self.lengths) for i in self.warmup_indices):
            raise ValueError("warmup_indices must index the dataset")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's shuffle (and the sampler's, which Lightning sets before every epoch)."""
        self.epoch = int(epoch)
        if callable(getattr(self.sampler, "set_epoch", None)):
            self.sampler.set_epoch(self.epoch)

    def current_epoch(self) -> int:
        """The epoch: the sampler's where it holds one (Lightning sets it there), else :meth:`set_epoch`'s."""
        return int(getattr(self.sampler, "epoch", self.epoch))

    def _cut(self, order: list[int]) -> list[list[int]]:
        batches = [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def epoch_batches(self) -> list[list[int]]:
        """All batches of the current epoch, before sharding (the same on every process)."""
        epoch = self.current_epoch()
        rng = random.Random(self.seed * 100003 + epoch)
        indices = self.epoch_indices(rng, epoch)
        rng.shuffle(indices)
        pool = self.batch_size * self.pool_batches
        batches: list[list[int]] = []
        for start in range(0, len(indices), pool):
            batches.extend(self._cut(sorted(indices[start: start + pool], key=lambda i: self.lengths[i])))
        rng.shuffle(batches)
        return batches

    def epoch_indices(self, rng: random.Random, epoch: int) -> list[int]:
        """The items of ``epoch`` (``len(lengths)`` of them): all, or in a warm-up epoch the
        warm-up items, each once, then drawn at random to the same count."""
        n = len(self.lengths)
        if epoch >= self.warmup_epochs:
            return list(range(n))
        pool = self.warmup_indices
        return pool * (n // len(pool)) + rng.sample(pool, n % len(pool))  # pool ⊆ items: n in all

    def _eval_share(self) -> list[int]:
        by_length = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], i))
        return by_length[self.rank:: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        if not self.shuffle:
            yield from self._cut(self._eval_share())
            return
        batches = self.epoch_batches()
        if self.num_replicas > 1 and batches:
            missing = -len(batches) % self.num_replicas
            batches = batches + (batches * (missing // len(batches) + 1))[:missing]
        yield from batches[self.rank:: self.num_replicas]

    def __len__(self) -> int:
        if not self.shuffle:
            share = len(self._eval_share())
            return share // self.batch_size if self.drop_last else -(-share // self.batch_size)
        n, pool = len(self.lengths), self.batch_size * self.pool_batches
        total = sum((min(pool, n - start) // self.batch_size if self.drop_last
                     else -(-min(pool, n - start) // self.batch_size)) for start in range(0, n, pool))
        return -(-total // self.num_replicas)
