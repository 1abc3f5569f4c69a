"""Length-bucketed batching shared by the LSTM and BERT input pipelines."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length tweets (less padding, faster LSTM), in a seeded random order.

    Each epoch: shuffle, cut into pools of ``pool_batches`` batches, sort each pool by length, batch
    it, then shuffle the batches. The order depends only on (seed, epoch), set by ``set_epoch``,
    so a resumed run sees exactly the batches an uninterrupted one would have.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, pool_batches: int = 50):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.pool_size = batch_size * pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.lengths))
        batches = []
        for start in range(0, len(order), self.pool_size):
            pool = order[start: start + self.pool_size]
            pool = pool[np.argsort(self.lengths[pool], kind="stable")]
            batches += [pool[i: i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)]
        for index in rng.permutation(len(batches)):
            yield batches[index]
