"""The TF-IDF pipeline behind the scoring interface of the neural models (src.models.loading).

src.evaluation and src.predict score any model as batches of a torch ``Dataset`` through an
``nn.Module`` whose outputs go through a softmax. Here the dataset holds the texts themselves, a
batch is ``{"texts": [...]}``, and the module returns the pipeline's log-probabilities, whose
softmax is its probabilities again: one scoring path for every model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.pipeline import Pipeline
from torch import nn
from torch.utils.data import Dataset


class Texts(Dataset):
    """Normalised texts; ``lengths()`` lets the length-sorted sampler batch them like the others."""

    def __init__(self, texts: Sequence[str]):
        self.texts = list(texts)

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> str:
        return self.texts[index]

    def lengths(self) -> list[int]:
        return [len(text) for text in self.texts]


def collate_texts(texts: list[str]) -> dict[str, list[str]]:
    return {"texts": list(texts)}


class TfidfScorer(nn.Module):
    """``forward(texts=[...])``: the pipeline's log-probabilities as a float tensor (CPU: scikit-learn's)."""

    def __init__(self, pipeline: Pipeline):
        super().__init__()
        self.pipeline = pipeline

    def forward(self, texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.pipeline.predict_log_proba(texts), dtype=np.float32))
