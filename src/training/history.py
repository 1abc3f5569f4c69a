"""The engine's training history as the guides' per-epoch lists (training_history.json) and as rows for DVC plots."""

from __future__ import annotations

# Per-epoch curves: the guides' key names (training_history.json) and the plots' columns.
CURVES = ("train_loss", "val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1", "learning_rate")


def guide_history(history: dict) -> dict:
    """The engine's history under the guides' key names (plus learning rate and macro recall)."""
    return {
        "train_loss": history["train_losses"],
        "val_loss": history["val_losses"],
        "val_accuracy": history["val_accuracies"],
        "val_macro_recall": history["val_macro_recalls"],
        "val_macro_f1": history["val_macro_f1s"],
        "learning_rate": history["learning_rates"],
        "epoch_time": history["epoch_times"],
        "monitor": history["monitor"],
        "best_epoch": history["best_epoch"],
        "best_value": history["best_value"],
        "total_time": history["total_time"],
    }


def epoch_rows(history: dict) -> list[dict]:
    """One row per epoch of a ``guide_history``: ``{"epoch": 1, "train_loss": ..., ...}`` (DVC plot data)."""
    return [
        {"epoch": epoch, **{name: history[name][epoch - 1] for name in CURVES}}
        for epoch in range(1, len(history["train_loss"]) + 1)
    ]


def best_epoch_metrics(history: dict, model) -> dict:
    """``metrics/<model>/train.json`` of a ``guide_history``: the best epoch's validation figures, with
    the same keys for every model so their rows line up in `dvc metrics diff`. Times are left out
    (they are noise in a review's diff); they stay in the model directory's training_history.json."""
    best = history["best_epoch"] - 1
    parameters = list(model.parameters())
    return {
        "best_epoch": history["best_epoch"],
        "epochs": len(history["train_loss"]),
        # the headline figures: every validation figure per epoch is in DVCLive's files (dvclive/train_<model>/)
        "val": {key: history[f"val_{key}"][best] for key in ("accuracy", "macro_recall")},
        "parameters": {
            "total": sum(p.numel() for p in parameters),
            "trainable": sum(p.numel() for p in parameters if p.requires_grad),
        },
    }
