"""Class weights for the cross-entropy loss: how much each class counts (TweetEval scores macro recall)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight

from src.core.errors import DataError

MODES = ("balanced", "sqrt", None)


def class_weights(
    labels: list[int], mode: str | None, n_classes: int, key: str, source: str = "data/processed/train.jsonl"
) -> torch.Tensor | None:
    """'balanced': n / (k * count_c) (scikit-learn's ``compute_class_weight``); 'sqrt': its square
    root, halfway on a log scale between balanced and unweighted; None: no weights.

    TweetEval is scored by macro recall, in which the rarest class (negative, 16% of train) counts
    as much as the others; unweighted, the loss lets a model neglect it, while the fully balanced
    loss over-predicts it on a test set whose tweets differ from train's. ``key`` (the params key)
    and ``source`` name what to fix when a class has no examples."""
    if mode is None:
        return None
    counts = np.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        raise DataError(f"{source}: a class has no examples; {key} needs all {n_classes}")
    weights = compute_class_weight("balanced", classes=np.arange(n_classes), y=np.asarray(labels))
    if mode == "sqrt":
        weights = np.sqrt(weights)
    return torch.tensor(weights, dtype=torch.float32)
