"""One trial: its configuration trained into ``config_<trial number>/``, its epochs reported to the pruner."""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from src.checkpoints.remove import remove_checkpoints
from src.core.atomic import write_json
from src.core.errors import TrainingDiverged
from src.models.bert_data import with_batch_size
from src.training.early_stopping import BestTracker
from src.tuning.space import NAMED


@dataclass
class TrialTrainer:
    """Trains one trial's configuration with ``train`` (``train_model``) into ``config_<trial number>/`` and
    returns its best validation ``monitor`` value; reports that value after each epoch to the pruner.

    Picklable, so that spawned workers receive it. Every trial is seeded with the same ``seed``
    (model head, dropout, batch order): its result depends on its configuration only, not on the
    worker or the trials before it.
    """

    train: Callable  # src.models.training.train_model, or a function with its signature
    train_loader: Any
    val_loader: Any
    output_dir: Path
    base: dict  # the untuned hyperparameters
    seed: int
    train_kwargs: dict  # train_model's keyword arguments, monitor included
    named: dict[str, dict] | None = None  # named configurations: the search picks a name (NAMED), this holds its values

    def __call__(self, trial: optuna.Trial, sampled: dict, device: str) -> float:
        config = {**self.base, **(self.named[sampled[NAMED]] if self.named else sampled)}
        directory = self.output_dir / f"config_{trial.number}"
        shutil.rmtree(directory, ignore_errors=True)  # what a killed attempt left
        loader = (
            with_batch_size(self.train_loader, config["batch_size"], self.seed)
            if hasattr(self.train_loader, "dataset")
            else self.train_loader
        )
        monitor = self.train_kwargs["monitor"]
        epochs: list[dict] = []  # each epoch's metrics, as the engine reports them

        def report(epoch: int, metrics: dict) -> None:
            epochs.append(metrics)
            with warnings.catch_warnings():  # a retried trial reports its epochs again: the same values
                warnings.simplefilter("ignore")
                trial.report(metrics[monitor], epoch)
            if epoch < config["num_epochs"] and trial.should_prune():  # after the last epoch: nothing to save
                raise optuna.TrialPruned(
                    f"{monitor} {metrics[monitor]:.4f} after epoch {epoch} is below the median of the finished trials"
                )

        started = time.perf_counter()
        pruned = diverged = None
        try:
            _, history = self.train(
                loader,
                self.val_loader,
                directory,
                config["num_epochs"],
                config["learning_rate"],
                config["weight_decay"],
                config["warmup_ratio"],
                device,
                dropout_prob=config["dropout_prob"],
                seed=self.seed,
                on_epoch_end=report,
                **self.train_kwargs,
            )
            best_epoch = history["best_epoch"]
        except (optuna.TrialPruned, TrainingDiverged) as exc:
            # a trial whose loss diverged is pruned, not the search's end: its record says why
            pruned = exc if isinstance(exc, optuna.TrialPruned) else optuna.TrialPruned(str(exc))
            diverged = exc if isinstance(exc, TrainingDiverged) else None
            remove_checkpoints(directory)  # a pruned trial keeps its record only
            # no history comes back from a raise: the reported epochs decide, by the Trainer's own rule
            tracker = BestTracker(monitor)
            for epoch, metrics in enumerate(epochs, 1):
                tracker.record(metrics[monitor], epoch)
            best_epoch = tracker.best_epoch or 1
        record = {
            "params": sampled,
            "hyperparameters": config,
            "epochs_run": len(epochs),
            "best_epoch": best_epoch if epochs else None,
            **(
                {
                    key: epochs[best_epoch - 1][key]
                    for key in ("val_loss", "val_accuracy", "val_macro_recall", "val_macro_f1")
                }
                if epochs
                else {}
            ),
            "time_s": round(time.perf_counter() - started, 2),
        }
        if diverged is not None:
            record["diverged"] = str(diverged)
        write_json(
            directory / "trial.json", {"trial": trial.number, "state": "pruned" if pruned else "complete", **record}
        )
        trial.set_user_attr("result", record)
        if pruned is not None:
            raise pruned
        return float(epochs[best_epoch - 1][monitor])
