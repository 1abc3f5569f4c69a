"""BERT input pipeline: tokenise once with the fast tokenizer, length-grouped batches, dynamic padding."""
from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from src.batching import BucketBatchSampler, LengthSortedSampler


class TokenizedTweets(Dataset):
    """Token ids of every tweet, truncated to ``max_length``, computed once (never per epoch)."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], tokenizer, max_length: int):
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
        self.input_ids = encoded["input_ids"]
        self.labels = list(labels)
        self.pad_token_id = tokenizer.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> tuple[list[int], int]:
        return self.input_ids[index], self.labels[index]

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


class PadToLongest:
    """Collate: pad each batch to its own longest tweet, never to ``max_length``."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        sequences, labels = zip(*items)
        width = max(len(s) for s in sequences)
        input_ids = torch.full((len(sequences), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            input_ids[row, : len(seq)] = torch.as_tensor(seq)
            attention_mask[row, : len(seq)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "labels": torch.as_tensor(labels, dtype=torch.long)}


def make_bert_loader(dataset: TokenizedTweets, batch_size: int, shuffle: bool, seed: int = 0,
                     num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """Training: length-grouped batches in a seeded order. Evaluation: length-sorted batches. Both padded
    per batch."""
    collate = PadToLongest(dataset.pad_token_id)
    common = {"collate_fn": collate, "num_workers": num_workers, "pin_memory": pin_memory,
              "persistent_workers": num_workers > 0}
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
    return make_bert_loader(loader.dataset, batch_size, shuffle=shuffled, seed=seed,
                            num_workers=loader.num_workers, pin_memory=loader.pin_memory)
