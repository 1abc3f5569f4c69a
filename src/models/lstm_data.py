"""LSTM input pipeline: tweets encoded once, length-bucketed batches, dynamic padding per batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from src.data.batching import BucketBatchSampler
from src.data.vocab import PAD_ID, UNK_ID, Vocabulary

# For model directories written before lstm.max_length existed. The real train split's longest tweet
# is 99 tokens (mean 24), so 128 truncates nothing there.
DEFAULT_MAX_LENGTH = 128
# Text beyond max_length x this many characters is never tokenised: tweets average under 6
# characters per token, so only a pathological line (1 MB without spaces, say) is cut before
# tokenising, and its cost stays bounded too.
CHARS_PER_TOKEN_BOUND = 64


def encode(vocab: Vocabulary, text: str, max_length: int | None) -> list[int]:
    """The first ``max_length`` token ids of ``text`` (all of them when None); at least one
    (an empty tweet becomes a single <unk>, so every sequence has length >= 1)."""
    if max_length is not None:
        text = text[: max_length * CHARS_PER_TOKEN_BOUND]
    return vocab.encode(text)[:max_length] or [UNK_ID]


class EncodedTweets(Dataset):
    """Token ids of every tweet, computed once up front (tokenizing per epoch would dominate CPU time),
    each cut to ``max_length`` tokens: training, evaluation and prediction all go through here, so
    a long line costs bounded memory and is truncated the same way everywhere."""

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        vocab: Vocabulary,
        max_length: int | None = DEFAULT_MAX_LENGTH,
    ):
        self.ids = [torch.tensor(encode(vocab, text, max_length), dtype=torch.long) for text in texts]
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ids[index], self.labels[index]

    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.ids]


def collate_padded(items: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pad to the longest tweet of this batch; the batch dict the Trainer feeds to ``model(**inputs)``."""
    sequences, labels = zip(*items)
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    input_ids = torch.full((len(sequences), int(lengths.max())), PAD_ID, dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = seq
    return {"input_ids": input_ids, "lengths": lengths, "labels": torch.stack(labels)}


def make_loader(
    texts: Sequence[str],
    labels: Sequence[int],
    vocab: Vocabulary,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    max_length: int | None = DEFAULT_MAX_LENGTH,
) -> DataLoader:
    """Training loaders shuffle with length buckets; evaluation loaders keep the file order."""
    dataset = EncodedTweets(texts, labels, vocab, max_length)
    pin_memory = torch.cuda.is_available()  # page-locked batches let the Trainer copy to the GPU asynchronously
    if shuffle:
        sampler = BucketBatchSampler(dataset.lengths(), batch_size, seed=seed)
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_padded, pin_memory=pin_memory)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_padded, pin_memory=pin_memory)
