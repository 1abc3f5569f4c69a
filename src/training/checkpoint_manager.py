"""Checkpoint files on disk (rotation, best-model tracking, a JSON registry) and early stopping."""
from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from src.atomic import atomic_open, save_torch, write_json
from src.errors import PipelineError
from src.interrupts import deferred_interrupts
from src.metrics import higher_is_better, is_improvement

log = logging.getLogger(__name__)

# Which metric each "best" ranking follows; the Trainer adds its monitored metric when it is another one.
DEFAULT_BEST_BY = {"loss": "val_loss", "accuracy": "val_accuracy"}


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Read a checkpoint written by CheckpointManager (tensors and plain types only: weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise PipelineError(f"{path}: not a readable checkpoint ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(checkpoint, dict) or not {"epoch", "model_state_dict"} <= checkpoint.keys():
        raise PipelineError(f"{path}: not a readable checkpoint (a torch file without epoch and model_state_dict)")
    return checkpoint


class CheckpointManager:
    """Writes checkpoints atomically and keeps the directory bounded.

    Kept on disk: the ``max_checkpoints`` most recent epoch checkpoints, plus the ``save_best_n``
    best by each ranking in ``best_by`` (loss and accuracy by default), plus ``best_model_name``
    (a copy of the checkpoint the caller marked best). ``registry_name`` is a JSON file describing
    every kept checkpoint and the rankings, rewritten atomically after each save; it also records
    whether the training that wrote them finished (``mark_complete``).
    """

    def __init__(
        self,
        checkpoint_dir: str | os.PathLike = "checkpoints",
        max_checkpoints: int = 5,
        save_best_n: int = 3,
        checkpoint_name: str = "checkpoint_epoch_{epoch}.pt",
        best_model_name: str = "best_model.pt",
        registry_name: str = "checkpoint_registry.json",
        best_by: dict[str, str] | None = None,
    ):
        if max_checkpoints < 1 or save_best_n < 0:
            raise PipelineError("max_checkpoints must be >= 1 and save_best_n >= 0")
        self.checkpoint_dir = Path(checkpoint_dir)
        self.max_checkpoints = max_checkpoints
        self.save_best_n = save_best_n
        self.checkpoint_name = checkpoint_name
        self.best_model_name = best_model_name
        self.registry_path = self.checkpoint_dir / registry_name
        self.best_by = dict(DEFAULT_BEST_BY if best_by is None else best_by)
        self.entries: list[dict] = []  # metadata of every checkpoint still on disk, oldest first
        self.best_model: dict | None = None
        self.training_complete = False
        if self.registry_path.is_file():  # pick up where an earlier run in this directory left off
            try:
                registry = json.loads(self.registry_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                log.warning("%s: unreadable registry (%s), ignored", self.registry_path, exc)
                registry = {}
            self.entries = [e for e in registry.get("checkpoints", []) if (self.checkpoint_dir / e["file"]).is_file()]
            self.best_model = registry.get("best_model")
            self.training_complete = registry.get("training_complete", False)

    # ---- writing -------------------------------------------------------------------------------
    def save_state(self, state: dict, epoch: int, metrics: dict[str, float], is_best: bool = False,
                   filename: str | None = None) -> Path:
        """Write ``state`` (with a metadata block added) as this epoch's checkpoint, then rotate.

        SIGINT / SIGTERM wait until the checkpoint, the best-model copy and the registry are all
        written: a stopped run leaves a consistent directory to resume from.
        """
        filename = filename or self.checkpoint_name.format(epoch=epoch)
        metadata = {"file": filename, "epoch": epoch, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "torch_version": str(torch.__version__),
                    "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}}
        path = self.checkpoint_dir / filename
        with deferred_interrupts():
            save_torch({**state, "metadata": metadata}, path)
            self._track(path, metadata, is_best)
            self._rotate()
            self.training_complete = False
            self._write_registry()
        return path

    def adopt(self, path: Path, metadata: dict, is_best: bool) -> None:
        """Bring the registry and the best model up to date with a checkpoint resumed from: a SIGKILL
        between writing a checkpoint and updating them leaves them one save behind."""
        with deferred_interrupts():
            self._track(path, metadata, is_best)
            self._write_registry()

    def _track(self, path: Path, metadata: dict, is_best: bool) -> None:
        self.entries = [e for e in self.entries if e["file"] != path.name] + [metadata]
        if is_best:
            with open(path, "rb") as src, atomic_open(self.checkpoint_dir / self.best_model_name, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            self.best_model = {**metadata, "file": self.best_model_name, "source": path.name}

    def mark_complete(self) -> None:
        """Record that training finished: a rerun must train again, not resume into doing nothing."""
        if self.entries:  # nothing saved, nothing to resume (and no directory to create)
            self.training_complete = True
            self._write_registry()

    def save_checkpoint(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, epoch: int,
                        train_loss: float, val_loss: float, val_accuracy: float, is_best: bool = False,
                        scheduler: Any = None, **extra_metrics: float) -> Path:
        """Convenience form: model + optimizer (+ scheduler) state with the usual metrics."""
        state = {"epoch": epoch, "model_state_dict": model.state_dict(),
                 "optimizer_state_dict": optimizer.state_dict(),
                 "scheduler_state_dict": scheduler.state_dict() if scheduler is not None else None}
        metrics = {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy, **extra_metrics}
        return self.save_state(state, epoch, metrics, is_best=is_best)

    # ---- rankings and clean-up ----------------------------------------------------------------
    def ranking(self, name: str) -> list[dict]:
        """Kept checkpoints that carry the ranking's metric, best first (ties: earlier epoch first)."""
        metric = self.best_by[name]
        scored = [e for e in self.entries if metric in e["metrics"]]
        sign = -1.0 if higher_is_better(metric) else 1.0
        return sorted(scored, key=lambda e: (sign * e["metrics"][metric], e["epoch"]))

    def _rotate(self) -> None:
        keep = {e["file"] for e in self.entries[-self.max_checkpoints:]}
        for name in self.best_by:
            keep |= {e["file"] for e in self.ranking(name)[: self.save_best_n]}
        for entry in [e for e in self.entries if e["file"] not in keep]:
            (self.checkpoint_dir / entry["file"]).unlink(missing_ok=True)
            log.debug("removed old checkpoint %s", entry["file"])
        self.entries = [e for e in self.entries if e["file"] in keep]

    def _write_registry(self) -> None:
        write_json(self.registry_path, {
            "best_model": self.best_model,
            "best": {name: [{"file": e["file"], "epoch": e["epoch"], metric: e["metrics"][metric]}
                            for e in self.ranking(name)[: self.save_best_n]]
                     for name, metric in self.best_by.items()},
            "checkpoints": self.entries,
            "training_complete": self.training_complete,
        })

    def clear(self) -> None:
        """Remove every checkpoint, the best model and the registry: nothing stale mixes into a fresh run."""
        for path in [*self.epoch_checkpoints(), *self.list_checkpoints(), self.checkpoint_dir / self.best_model_name,
                     self.registry_path]:
            path.unlink(missing_ok=True)
        self.remove_partial_writes()
        self.entries, self.best_model, self.training_complete = [], None, False

    def discard(self, path: Path) -> None:
        """Remove one checkpoint file (an unreadable one) and forget it."""
        path.unlink(missing_ok=True)
        self.entries = [e for e in self.entries if e["file"] != path.name]

    def remove_partial_writes(self) -> None:
        """Temp files of atomic writes cut short by SIGKILL (complete files are never temp files)."""
        for path in self.checkpoint_dir.glob(".*.tmp"):
            if path.is_file():
                path.unlink()

    # ---- reading -------------------------------------------------------------------------------
    def list_checkpoints(self) -> list[Path]:
        return [self.checkpoint_dir / e["file"] for e in self.entries]

    def epoch_checkpoints(self) -> list[Path]:
        """Files named like ``checkpoint_name`` on disk, newest epoch first (the registry may lag
        behind the files by one save when the process was killed in between)."""
        prefix, _, suffix = self.checkpoint_name.partition("{epoch}")
        found = []
        for path in self.checkpoint_dir.glob(f"{prefix}*{suffix}"):
            epoch = path.name[len(prefix): len(path.name) - len(suffix)]
            if epoch.isdigit():
                found.append((int(epoch), path))
        return [path for _, path in sorted(found, reverse=True)]

    def get_checkpoint_info(self, path: str | os.PathLike) -> dict:
        """The metadata block of a checkpoint file (epoch, metrics, time, torch version)."""
        return load_checkpoint_file(path)["metadata"]

    def load_best_checkpoint(self, metric: str = "loss") -> Path | None:
        """Path of the best kept checkpoint by ``metric`` ('loss', 'accuracy' or another ranking name)."""
        if metric not in self.best_by:
            raise PipelineError(f"unknown ranking {metric!r}: expected one of {', '.join(self.best_by)}")
        ranked = self.ranking(metric)
        return self.checkpoint_dir / ranked[0]["file"] if ranked else None


def create_checkpoint_manager(checkpoint_dir: str | os.PathLike = "checkpoints", max_checkpoints: int = 5,
                              save_best_n: int = 3, **kwargs: Any) -> CheckpointManager:
    return CheckpointManager(checkpoint_dir, max_checkpoints=max_checkpoints, save_best_n=save_best_n, **kwargs)


class EarlyStopping:
    """Stop after ``patience`` epochs without improving ``monitor`` by more than ``min_delta``.

    ``monitor`` names the direction: a loss is minimised, accuracy / recall / F1 are maximised.
    With ``restore_best_weights`` the model gets the best epoch's weights back when it stops.
    """

    def __init__(self, patience: int = 7, min_delta: float = 0.0, monitor: str = "val_loss",
                 restore_best_weights: bool = True):
        self.patience = patience
        self.min_delta = min_delta
        self.monitor = monitor
        self.restore_best_weights = restore_best_weights
        self.best_value: float | None = None
        self.best_epoch: int | None = None
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
        if is_improvement(value, self.best_value, self.monitor, self.min_delta):
            self.best_value, self.best_epoch, self.counter = float(value), epoch, 0
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
            log.info("early stopping: restored the weights of epoch %d (%s = %.4f)",
                     self.best_epoch, self.monitor, self.best_value)

    def state_dict(self) -> dict:
        return {key: copy.copy(getattr(self, key)) for key in
                ("patience", "min_delta", "monitor", "restore_best_weights", "best_value", "best_epoch",
                 "best_weights", "counter", "stopped_epoch")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def create_early_stopping(patience: int = 7, min_delta: float = 0.0, monitor: str = "val_loss",
                          restore_best_weights: bool = True) -> EarlyStopping:
    return EarlyStopping(patience=patience, min_delta=min_delta, monitor=monitor,
                         restore_best_weights=restore_best_weights)
