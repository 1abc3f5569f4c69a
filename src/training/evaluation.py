"""Gathered evaluation: every rank scores its share of the batches, then all ranks compute the same metrics."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from src.core.errors import PipelineError
from src.core.progress import progress as progress_of
from src.core.runtime import autocast_context, batch_labels, forward_logits, move_batch
from src.data.batching import restore_order
from src.scoring.metrics import classification_metrics
from src.training import distributed
from src.training.losses import predicted_classes


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data_loader: Iterable,
    device: torch.device,
    criterion: nn.Module | None = None,
    mixed_precision: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Loss (when ``criterion``), accuracy, macro recall, macro F1 and the predictions over a loader.

    Data-parallel, rank r scores batches r, r + world size, ...; every rank then gathers all the
    batches' results and computes the metrics over the whole loader, in its order (the same
    figures, to the bit, as one process scoring it).
    """
    model.eval()
    world, rank = distributed.world_size(), distributed.rank()
    batches = data_loader if world == 1 else itertools.islice(data_loader, rank, None, world)
    results = []  # (loss sum, predictions, labels) per batch
    for batch in progress_of(batches, "eval", enabled=progress):
        batch = move_batch(batch, device)
        labels = batch_labels(batch)
        with autocast_context(device, mixed_precision):
            logits = forward_logits(model, batch)
        logits = logits.float()
        loss = criterion(logits, labels).item() * len(labels) if criterion is not None else 0.0
        results.append((loss, predicted_classes(logits).cpu().tolist(), labels.cpu().tolist()))
    if world > 1:  # back into loader order: batch i was scored by rank i % world, as its (i // world)-th
        gathered = distributed.gather_objects(results)
        results = [gathered[i % world][i // world] for i in range(sum(len(g) for g in gathered))]
    total_loss, n_seen, predictions, labels = 0.0, 0, [], []
    for batch_loss, batch_predictions, labels_of_batch in results:
        total_loss += batch_loss
        n_seen += len(labels_of_batch)
        predictions += batch_predictions
        labels += labels_of_batch
    if n_seen == 0:
        raise PipelineError("evaluation data is empty")
    result = {
        "loss": total_loss / n_seen if criterion is not None else None,
        **classification_metrics(labels, predictions),
    }
    # a length-sorted loader scores out of dataset order: predictions go back into it
    result["predictions"] = restore_order(predictions, getattr(getattr(data_loader, "sampler", None), "order", None))
    return result


def count_parameters(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable
