"""Classification metrics shared by training, model selection and evaluation (scikit-learn based).

TweetEval's official sentiment metric is macro-averaged recall, so it sits beside accuracy and macro-F1.
"""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, recall_score

# Names a Trainer may monitor (best checkpoint, early stopping, ReduceLROnPlateau).
MONITORABLE = ("val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1")


def classification_metrics(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, float]:
    """Accuracy, macro recall and macro F1 of integer class predictions."""
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_recall": float(recall_score(labels, predictions, average="macro", zero_division=0)),
        "macro_f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
    }


def detailed_metrics(labels: Sequence[int], predictions: Sequence[int], label_names: Sequence[str]) -> dict:
    """Everything the evaluate stage reports for one model on one split.

    ``f1_pn`` is SemEval-2017 Task 4A's measure: the mean F1 of the positive and negative classes
    (present when ``label_names`` has both). ``per_class`` and ``confusion_matrix`` (rows: actual,
    columns: predicted) are keyed by label name so that `dvc metrics diff` shows one row per figure.
    """
    ids = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predictions, labels=ids, zero_division=0)
    report = {**classification_metrics(labels, predictions), "n": len(labels)}
    if "positive" in label_names and "negative" in label_names:
        report["f1_pn"] = float((f1[label_names.index("positive")] + f1[label_names.index("negative")]) / 2)
    report["per_class"] = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }
    matrix = confusion_matrix(labels, predictions, labels=ids)
    report["confusion_matrix"] = {
        actual: {predicted: int(matrix[i, j]) for j, predicted in enumerate(label_names)}
        for i, actual in enumerate(label_names)
    }
    return report


def higher_is_better(metric: str) -> bool:
    """Losses go down, everything else (accuracy, recall, F1) goes up."""
    return "loss" not in metric


def is_improvement(value: float, best: float | None, metric: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in the metric's direction."""
    if best is None:
        return True
    return value > best + min_delta if higher_is_better(metric) else value < best - min_delta
