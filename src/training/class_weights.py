"""Class weights for the cross-entropy loss: 'balanced' makes every class weigh the same (macro recall)."""
from __future__ import annotations

import numpy as np
import torch

from src.errors import DataError


def class_weights(labels: list[int], mode: str | None, n_classes: int, key: str,
                  source: str = "data/processed/train.jsonl") -> torch.Tensor | None:
    """'balanced': n / (k * count_c), as scikit-learn's ``class_weight='balanced'``; None: no weights.

    TweetEval is scored by macro recall, in which the rarest class (negative, 16% of train) counts
    as much as the others; unweighted, the loss lets a model neglect it. ``key`` (the params key)
    and ``source`` name what to fix when a class has no examples."""
    if mode is None:
        return None
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        raise DataError(f"{source}: a class has no examples; {key} needs all {n_classes}")
    return torch.tensor(counts.sum() / (n_classes * counts), dtype=torch.float32)
