"""The best epoch by one monitored metric (BestTracker), and early stopping built on it."""

from __future__ import annotations

import copy
import logging

import torch

from src.scoring.metrics import is_improvement

log = logging.getLogger(__name__)


class BestTracker:
    """The best value of one monitored metric so far and its epoch: the one place "best" is decided
    (the Trainer's best epoch and early stopping both are one). ``monitor`` names the direction: a
    loss is minimised, accuracy / recall / F1 are maximised; an improvement must exceed ``min_delta``."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0):
        self.monitor = monitor
        self.min_delta = min_delta
        self.best_value: float | None = None
        self.best_epoch: int | None = None

    def record(self, value: float, epoch: int) -> bool:
        """True, remembering it, when ``value`` improves on the best so far."""
        if not is_improvement(value, self.best_value, self.monitor, self.min_delta):
            return False
        self.best_value, self.best_epoch = float(value), epoch
        return True


class EarlyStopping(BestTracker):
    """Stop after ``patience`` epochs without improving ``monitor`` by more than ``min_delta``.

    With ``restore_best_weights`` the model gets the best epoch's weights back when it stops.
    """

    def __init__(
        self, patience: int = 7, min_delta: float = 0.0, monitor: str = "val_loss", restore_best_weights: bool = True
    ):
        super().__init__(monitor, min_delta)
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.counter = 0
        self.stopped_epoch: int | None = None

    def __call__(self, value: float, model: torch.nn.Module, epoch: int) -> bool:
        """Record this epoch's value; True (with the best weights restored) when training should stop."""
        should_stop = self.update(value, model, epoch)
        if should_stop:
            self.restore(model)
        return should_stop

    def update(self, value: float, model: torch.nn.Module, epoch: int) -> bool:
        """The bookkeeping half of ``__call__``: remember the best weights, count stale epochs."""
        if self.record(value, epoch):
            self.counter = 0
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        self.counter += 1
        if self.counter < self.patience:
            return False
        self.stopped_epoch = epoch
        return True

    def restore(self, model: torch.nn.Module) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            model.load_state_dict(self.best_weights)
            log.info(
                "early stopping: restored the weights of epoch %d (%s = %.4f)",
                self.best_epoch,
                self.monitor,
                self.best_value,
            )

    def state_dict(self) -> dict:
        return {
            key: copy.copy(getattr(self, key))
            for key in (
                "patience",
                "min_delta",
                "monitor",
                "restore_best_weights",
                "best_value",
                "best_epoch",
                "best_weights",
                "counter",
                "stopped_epoch",
            )
        }

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def create_early_stopping(
    patience: int = 7, min_delta: float = 0.0, monitor: str = "val_loss", restore_best_weights: bool = True
) -> EarlyStopping:
    return EarlyStopping(
        patience=patience, min_delta=min_delta, monitor=monitor, restore_best_weights=restore_best_weights
    )
