"""Length-bucketed batching shared by the LSTM and BERT input pipelines."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from src.core.errors import PipelineError


def process_group() -> tuple[int, int]:
    """(world size, rank) of the torchrun process group this process joined; (1, 0) outside one.
    Read from torch directly: scoring batches with these samplers too, and must not depend on the engine."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length tweets (less padding, faster LSTM), in a seeded random order.

    Each epoch: shuffle, cut into pools of ``pool_batches`` batches, sort each pool by length, batch
    it, then shuffle the batches. The order depends only on (seed, epoch), set by ``set_epoch``,
    so a resumed run sees exactly the batches an uninterrupted one would have.

    Data-parallel (``num_replicas`` processes; by default the torchrun process group's size and
    rank): ``batch_size`` is the global batch. Every rank builds the same global batches and takes
    its contiguous slice of each (sizes differ by at most one), so each optimizer step sees the
    same tweets, and each epoch has the same number of steps, at any process count. The one
    exception: a last batch smaller than ``num_replicas`` (it could not give every rank a tweet)
    joins the batch before it.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        pool_batches: int = 50,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool_size = batch_size * pool_batches
        self.epoch = 0
        group_size, group_rank = process_group()
        self.num_replicas = group_size if num_replicas is None else num_replicas
        self.rank = group_rank if rank is None else rank
        if len(self.lengths) < self.num_replicas:
            raise PipelineError(
                f"{len(self.lengths)} training examples cannot be shared by "
                f"{self.num_replicas} processes: use fewer processes"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _merges_last_batch(self) -> bool:
        remainder = len(self.lengths) % self.batch_size
        return 0 < remainder < self.num_replicas and len(self.lengths) > self.batch_size

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) - self._merges_last_batch()

    def global_batches(self) -> list[list[int]]:
        """This epoch's batches over all ranks, in training order."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool_size):
            pool = order[start : start + self.pool_size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[i : i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)]
        if self._merges_last_batch():
            last = batches.pop()
            batches[-1] += last
        return [batches[index] for index in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            # contiguous slices of a length-sorted batch: every rank pads little
            yield batch if self.num_replicas == 1 else np.array_split(batch, self.num_replicas)[self.rank].tolist()


class LengthSortedSampler(Sampler[int]):
    """Indices from the shortest sequence to the longest (stable), for scoring: each batch is padded
    to its own longest member, so sorted batches pad little (measured on TweetEval's validation
    split with MiniLM: 1.77x fewer tokens than file order at batch 128). ``order[i]`` is the dataset
    index of the i-th item yielded: ``restore_order`` puts per-item results back in dataset order."""

    def __init__(self, lengths: Sequence[int]):
        self.order = np.argsort(np.asarray(lengths), kind="stable").tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


def restore_order(items: list, order: Sequence[int] | None) -> list:
    """Per-item results in the order ``LengthSortedSampler`` yielded them, back in dataset order."""
    if order is None:
        return items
    restored = [None] * len(items)
    for position, index in enumerate(order):
        restored[index] = items[position]
    return restored
