"""BERT input pipeline: tokenise once with the fast tokenizer, length-grouped batches, dynamic padding."""

from __future__ import annotations

from collections.abc import Sequence

from torch.utils.data import DataLoader, Dataset
from transformers import DataCollatorWithPadding

from src.data.batching import BucketBatchSampler, LengthSortedSampler


class TokenizedTweets(Dataset):
    """Token ids of every tweet, truncated to ``max_length``, computed once (never per epoch)."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], tokenizer, max_length: int):
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
        self.input_ids = encoded["input_ids"]
        self.labels = list(labels)
        self.tokenizer = tokenizer  # pads the batches (DataCollatorWithPadding)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, list[int] | int]:
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def make_bert_loader(
    dataset: TokenizedTweets,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """Training: length-grouped batches in a seeded order. Evaluation: length-sorted batches. Both padded
    per batch: each batch to its own longest tweet, never to ``max_length``."""
    collate = DataCollatorWithPadding(dataset.tokenizer)
    common = {
        "collate_fn": collate,
        "num_workers": num_workers,
        "pin_memory": pin_memory,
        "persistent_workers": num_workers > 0,
    }
    if shuffle:
        sampler = BucketBatchSampler(dataset.lengths(), batch_size, seed=seed)
        return DataLoader(dataset, batch_sampler=sampler, **common)
    # scoring: shortest to longest (results come back in dataset order, see restore_order)
    return DataLoader(dataset, batch_size=batch_size, sampler=LengthSortedSampler(dataset.lengths()), **common)


def with_batch_size(loader: DataLoader, batch_size: int, seed: int = 0) -> DataLoader:
    """The same dataset and kind of loader (shuffled or not) with ``batch_size`` (tuning); the loader
    itself when it already has that batch size."""
    shuffled = isinstance(loader.batch_sampler, BucketBatchSampler)
    # a batch_sampler loader reports batch_size None: its sampler holds the size
    current = loader.batch_sampler.batch_size if shuffled else loader.batch_size
    if current == batch_size:
        return loader
    seed = loader.batch_sampler.seed if shuffled else seed
    return make_bert_loader(
        loader.dataset,
        batch_size,
        shuffle=shuffled,
        seed=seed,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
    )
