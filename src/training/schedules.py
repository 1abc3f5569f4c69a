"""The engine's learning-rate schedules (per epoch: plateau, step, cosine; per batch: linear_warmup)."""

from __future__ import annotations

import math
from typing import Any

import torch

from src.core.errors import PipelineError
from src.scoring.metrics import higher_is_better


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    scheduler_type: str | None,
    epochs: int | None = None,
    monitor: str = "val_loss",
    *,
    step_size: int | None = None,
    gamma: float = 0.5,
    patience: int = 2,
    total_steps: int | None = None,
    warmup_ratio: float = 0.0,
):
    """The engine's learning-rate schedules, or None. Stepped per epoch (create_trainer): plateau (on
    ``monitor``), step, cosine (over ``epochs``). Stepped per batch (BERT): linear_warmup, a linear
    warmup over ``warmup_ratio`` of ``total_steps``, then a linear decay to zero."""
    if scheduler_type is None:
        return None
    if scheduler_type == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max" if higher_is_better(monitor) else "min", factor=gamma, patience=patience
        )
    if scheduler_type == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size or max(1, epochs // 3), gamma=gamma)
    if scheduler_type == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if scheduler_type == "linear_warmup":
        from transformers import get_linear_schedule_with_warmup  # imported by BERT's runs alone

        # rounded up, as transformers' TrainingArguments.get_warmup_steps does (round() would take 12 for 12.5)
        return get_linear_schedule_with_warmup(optimizer, math.ceil(warmup_ratio * total_steps), total_steps)
    raise PipelineError(f"scheduler = {scheduler_type!r}: expected plateau, step, cosine, linear_warmup or null")


def size_schedule(scheduler: Any, epochs: int) -> None:
    """Fit a step or cosine schedule that create_trainer made without an epoch count to ``epochs``: a third
    of them per step, or one cosine over all of them. Other schedules (and a step_size given) stay as they are."""
    if not getattr(scheduler, "sized_by_epochs", False):
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
        scheduler.T_max = max(1, epochs)
    elif isinstance(scheduler, torch.optim.lr_scheduler.StepLR):
        scheduler.step_size = max(1, epochs // 3)
