"""The engine's losses: cross-entropy, or binary cross-entropy for a one-logit (two-class) model."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from src.core.errors import PipelineError


# ---- one logit per class (cross-entropy), or one logit for two classes (output_dim 1: binary cross-entropy)
class BinaryLogitLoss(nn.BCEWithLogitsLoss):
    """BCEWithLogitsLoss on ``[B, 1]`` logits and integer 0/1 labels, as the Trainer passes them.
    ``pos_weight`` (class 1's weight / class 0's) balances the two classes like a weighted cross-entropy.
    A label other than 0 or 1 is an error: BCE would train on it silently."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if labels.numel() and labels.max() > 1:  # data whose loader does not show its labels up front
            largest = int(labels.max())
            check_output_dim(1, [str(i) for i in range(largest + 1)], f"a batch (label {largest})", exact=False)
        return super().forward(logits.reshape(-1), labels.to(logits.dtype))


def check_output_dim(output_dim: int, label_names: list[str], data: str, exact: bool = True) -> None:
    """A model's logits must fit the data's classes: one per class, or one (binary cross-entropy) for two.
    ``exact``: whether ``label_names`` are all the classes (False: at least these many)."""
    classes = len(label_names)
    at_least = "" if exact else "at least "
    if output_dim == 1 and classes != 2:
        raise PipelineError(
            f"output_dim = 1 (one logit, binary cross-entropy) needs a two-class data set; {data} has "
            f"{at_least}{classes} classes ({', '.join(label_names)}): set output_dim to {classes}"
        )
    if output_dim not in (1, classes):
        raise PipelineError(
            f"output_dim = {output_dim} but {data} has {classes} classes ({', '.join(label_names)}): "
            f"set output_dim to {classes}" + (" (or 1: one logit)" if classes == 2 else "")
        )


def check_two_class_labels(model: nn.Module, loaders: dict[str, Iterable]) -> None:
    """A one-logit model (``output_dim`` 1) on data with labels other than 0 and 1 is an error naming the
    loader, before any training: read from each loader's ``dataset.labels`` when it has them (the
    project's datasets do), else from the batches as they come (BinaryLogitLoss)."""
    if output_size(model) != 1:
        return
    for name, loader in loaders.items():
        labels = getattr(getattr(loader, "dataset", None), "labels", None)
        if labels is None:
            continue
        largest = int(torch.as_tensor(labels).max()) if len(labels) else 0
        if largest > 1:
            check_output_dim(1, [str(i) for i in range(largest + 1)], name)


def output_size(model: nn.Module) -> int | None:
    """How many logits ``model`` outputs, when it says so (``config['output_dim']``), else None."""
    config = getattr(model, "config", None)
    return config.get("output_dim") if isinstance(config, dict) else None


def default_criterion(model: nn.Module, class_weights: torch.Tensor | None = None) -> nn.Module:
    """Binary cross-entropy for a one-logit model, cross-entropy otherwise (weighted per class when given)."""
    if output_size(model) == 1:
        pos_weight = None if class_weights is None else (class_weights[1] / class_weights[0]).reshape(1)
        return BinaryLogitLoss(pos_weight=pos_weight)
    return nn.CrossEntropyLoss(weight=class_weights)


def predicted_classes(logits: torch.Tensor) -> torch.Tensor:
    """The class of each row: the largest logit, or for a single logit 1 when it is > 0."""
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(dim=1)
