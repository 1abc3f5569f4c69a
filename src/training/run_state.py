"""A Trainer's run state: what a checkpoint holds, how a run saves, restores, resumes and publishes it, its summary.

A mixin of src.training.trainer.Trainer (it reads the trainer's model, optimizer, counters and
CheckpointManager), kept apart so that the trainer module is the loop a reader follows.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from src.checkpoints.files import load_checkpoint_file
from src.checkpoints.manager import holds_resume_state
from src.checkpoints.rng import rng_state, set_rng_state
from src.core.errors import PipelineError
from src.core.interrupts import deferred_interrupts
from src.training import distributed
from src.training.early_stopping import EarlyStopping
from src.training.evaluation import count_parameters

log = logging.getLogger("src.training.trainer")  # the engine's one logger name

# A checkpoint's resume state, one list for saving and restoring: key -> the Trainer attribute whose
# state_dict() it holds (None when the attribute is None), then plain values saved and restored as they are.
RESUME_STATE = {
    "model_state_dict": "model",
    "optimizer_state_dict": "optimizer",
    "scheduler_state_dict": "scheduler",
    "grad_scaler_state_dict": "grad_scaler",
    "early_stopping": "early_stopping",
}
OPTIMIZER_STATE = ("optimizer_state_dict", "scheduler_state_dict")  # restored only with load_optimizer
RESUME_VALUES = ("epoch", "global_step", "history")


class RunState:
    """The Trainer's checkpoint, restore, resume, publish and summary methods."""

    def _publish_best(self) -> None:
        """Put the run's best model in place, let ``on_publish`` write what goes with it, then record
        that the run finished. A signal waits until all of it is written; a kill in between leaves
        the run unfinished, so the rerun resumes and publishes the same model again."""
        with deferred_interrupts():
            published = self.checkpoints.publish_best()
            if published is not None:
                self.model_id = published["model_id"]
                if self.on_publish is not None:
                    self.on_publish(published)
            self.checkpoints.mark_complete()

    def save_checkpoint(self, filename: str | None = None, is_best: bool = False, metrics: dict | None = None) -> Path:
        """Everything needed to continue identically: weights, optimizer, scheduler, counters,
        history, early stopping and RNG states. ``filename`` defaults to the epoch pattern. Once a
        newer checkpoint is saved this one is rewritten to the model alone (see CheckpointManager)."""
        state = self.state_dict()
        return self.checkpoints.save_state(state, self.epoch, metrics or {}, is_best=is_best, filename=filename)

    def load_checkpoint(self, path: str | os.PathLike, load_optimizer: bool = True) -> dict:
        """Restore a checkpoint written by ``save_checkpoint``; returns the raw checkpoint dict."""
        checkpoint = load_checkpoint_file(path, map_location=self.device)
        if load_optimizer and not holds_resume_state(checkpoint):
            raise PipelineError(
                f"{path}: holds the model only (optimizer state is kept in the newest checkpoint "
                "only); load it with load_optimizer=False, or resume from the newest one"
            )
        self.load_state_dict(checkpoint, load_optimizer)
        log.info("loaded checkpoint %s (epoch %d)", path, self.epoch)
        return checkpoint

    def state_dict(self) -> dict:
        """Everything needed to continue identically, under the checkpoint file's keys (RESUME_STATE
        and RESUME_VALUES, the one list ``load_state_dict`` restores from), and what identifies the run."""
        return {
            **{
                key: (part.state_dict() if (part := getattr(self, name)) is not None else None)
                for key, name in RESUME_STATE.items()
            },
            **{key: getattr(self, key) for key in RESUME_VALUES},
            "best_value": self.best.best_value,
            "best_epoch": self.best.best_epoch,
            "rng_state": rng_state(),
            "monitor": self.monitor,  # the rest identifies the run and rebuilds the model; never restored
            "model_config": getattr(self.model, "config", None),
            "fingerprint": self.fingerprint,
        }

    def load_state_dict(self, checkpoint: dict, load_optimizer: bool = True) -> None:
        """Restore what ``state_dict`` saved; the optimizer and scheduler only with ``load_optimizer``."""
        if checkpoint.get("early_stopping") is not None:
            self.early_stopping = EarlyStopping()
        for key, name in RESUME_STATE.items():
            part, state = getattr(self, name), checkpoint.get(key)
            # an empty state (a disabled GradScaler's) has nothing to restore
            if part is not None and state and (load_optimizer or key not in OPTIMIZER_STATE):
                part.load_state_dict(state)
        self.epoch = checkpoint["epoch"]
        self.global_step = checkpoint.get("global_step", 0)
        self.history = checkpoint.get("history") or self._empty_history()
        self.best.best_value, self.best.best_epoch = checkpoint.get("best_value"), checkpoint.get("best_epoch")
        if checkpoint.get("rng_state") is not None:
            set_rng_state(checkpoint["rng_state"])  # last: restoring the rest draws no random numbers

    @distributed.main_process_first
    def resume(self) -> bool:
        """Continue from the newest checkpoint of this run, if it did not finish, or start fresh:
        ``CheckpointManager.resume_point`` decides, and logs why it will not resume. True when it resumed."""
        found = self.checkpoints.resume_point(self.fingerprint, self.device, repair=self.is_main_process)
        if found is None:
            return False
        path, checkpoint = found
        self.load_state_dict(checkpoint)
        log.info("resuming from %s (epoch %d done)", path, self.epoch)
        return True

    def resume_training(
        self,
        checkpoint_path: str | os.PathLike,
        additional_epochs: int,
        early_stopping_patience: int | None = None,
        save_best: bool = True,
        save_every: int | None = 1,
    ) -> dict:
        """Load a checkpoint and train ``additional_epochs`` more; early stopping continues its count."""
        self.load_checkpoint(checkpoint_path, load_optimizer=True)
        return self.train(self.epoch + additional_epochs, early_stopping_patience, save_best, save_every)

    def get_training_summary(self) -> dict:
        """Status, best and final metrics, timing and model size of the run so far."""
        h = self.history
        total, trainable = count_parameters(self.model)
        best = (self.best.best_epoch - 1) if self.best.best_epoch else None
        return {
            "training_status": {
                "epochs_completed": self.epoch,
                "best_epoch": self.best.best_epoch,
                "global_step": self.global_step,
                "early_stopped": bool(self.early_stopping and self.early_stopping.stopped_epoch),
            },
            "performance_metrics": {
                "monitor": self.monitor,
                "best_value": self.best.best_value,
                "best_val_loss": h["best_val_loss"],
                "best_val_accuracy": max(h["val_accuracies"]) if h["val_accuracies"] else None,
                "best_epoch_val_accuracy": h["val_accuracies"][best] if best is not None else None,
                "best_epoch_val_macro_recall": h["val_macro_recalls"][best] if best is not None else None,
                "best_epoch_val_macro_f1": h["val_macro_f1s"][best] if best is not None else None,
                "final_train_loss": h["train_losses"][-1] if h["train_losses"] else None,
                "final_val_loss": h["val_losses"][-1] if h["val_losses"] else None,
            },
            "timing": {
                "total_time": h["total_time"],
                "mean_epoch_time": float(np.mean(h["epoch_times"])) if h["epoch_times"] else None,
            },
            "model_info": {
                "total_parameters": total,
                "trainable_parameters": trainable,
                "device": str(self.device),
                "model_class": type(self.model).__name__,
            },
        }
