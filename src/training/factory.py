"""The LSTM training guide's factory: ``create_trainer(model, train_loader, val_loader, ...)``."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from src.core.errors import PipelineError
from src.training.early_stopping import EarlyStopping
from src.training.schedules import build_scheduler
from src.training.trainer import Trainer

log = logging.getLogger("src.training.trainer")


def create_trainer(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable,
    learning_rate: float = 1e-3,
    scheduler_type: str | None = "plateau",
    weight_decay: float = 0.0,
    gradient_clip: float | None = 1.0,
    checkpoint_dir: str | os.PathLike = "checkpoints",
    epochs: int | None = None,
    monitor: str = "val_loss",
    criterion: nn.Module | None = None,
    scheduler_kwargs: dict | None = None,
    *,
    early_stopping_patience: int | None = None,
    batch_size: int | None = None,
    validation_split: float | None = None,
    **trainer_kwargs: Any,
) -> Trainer:
    """Adam(W) over the trainable parameters + an epoch-level scheduler, wrapped in a Trainer.

    ``epochs`` sizes the step and cosine schedules: the run's whole length, which ``train(epochs)`` may
    reach in parts (a resumed run continues the same schedule). Without it, the first ``train(epochs)``
    sizes them to the epochs it runs (a step_size in ``scheduler_kwargs`` is kept). Extra keyword
    arguments go to Trainer (device,
    mixed_precision, max_checkpoints, checkpoint_name, progress, ...). So that a whole
    ``training_config`` dict can be passed (``create_trainer(model, train, val, **training_config)``):
    ``early_stopping_patience`` becomes ``train()``'s default; ``batch_size`` and ``validation_split``
    describe the loaders, which are already made: a ``batch_size`` that differs from the training
    loader's is an error, ``validation_split`` is recorded only (``val_loader`` is the validation data).
    """
    loader_batch = getattr(train_loader, "batch_size", None) or getattr(
        getattr(train_loader, "batch_sampler", None), "batch_size", None
    )
    if batch_size is not None and loader_batch is not None and batch_size != loader_batch:
        raise PipelineError(
            f"batch_size = {batch_size} but train_loader batches {loader_batch} examples: "
            "the loader decides the batch size (make it with batch_size)"
        )
    if validation_split is not None:
        log.info(
            "validation_split = %s: the validation data is val_loader's (split it when making the loaders)",
            validation_split,
        )
    parameters = [p for p in model.parameters() if p.requires_grad]  # frozen embeddings stay out
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    scheduler = build_scheduler(optimizer, scheduler_type, epochs or 20, monitor, **(scheduler_kwargs or {}))
    if epochs is None and scheduler is not None:  # sized by the first train(epochs) instead
        scheduler.sized_by_epochs = not (scheduler_kwargs or {}).get("step_size")
    trainer = Trainer(
        model,
        train_loader,
        val_loader,
        optimizer,
        criterion,
        scheduler,
        gradient_clip,
        checkpoint_dir,
        scheduler_interval="epoch",
        monitor=monitor,
        **trainer_kwargs,
    )
    if early_stopping_patience is not None:  # train(epochs) stops early without naming the patience again
        trainer.early_stopping = EarlyStopping(early_stopping_patience, trainer.early_stopping_min_delta, monitor)
    return trainer
