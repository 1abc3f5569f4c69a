"""Classification metrics shared by training, model selection and evaluation (scikit-learn based).

TweetEval's official sentiment metric is macro-averaged recall, so it sits beside accuracy and macro-F1.
"""
from __future__ import annotations

from typing import Sequence

from sklearn.metrics import accuracy_score, f1_score, recall_score

# Names a Trainer may monitor (best checkpoint, early stopping, ReduceLROnPlateau).
MONITORABLE = ("val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1")


def classification_metrics(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """Accuracy, macro recall and macro F1 of integer class predictions."""
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_recall": float(recall_score(labels, predictions, average="macro", zero_division=0)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
    }


def higher_is_better(metric: str) -> bool:
    """Losses go down, everything else (accuracy, recall, F1) goes up."""
    return "loss" not in metric


def is_improvement(value: float, best: float | None, metric: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in the metric's direction."""
    if best is None:
        return True
    return value > best + min_delta if higher_is_better(metric) else value < best - min_delta
