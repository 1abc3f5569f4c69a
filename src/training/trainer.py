"""The one training engine (LSTM and BERT): train / validate / checkpoint / early-stop / resume.

Batches are dicts: ``labels`` plus the model's keyword inputs (``input_ids`` + ``lengths`` for the
LSTM; ``input_ids`` + ``attention_mask`` for BERT), or a plain loader's ``(inputs..., labels)``
tuples. The model's output is a logits tensor, an object with ``.logits`` (Hugging Face models) or a
tuple that starts with the logits (src.core.runtime.forward_logits).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from src.checkpoints.manager import DEFAULT_BEST_BY, CheckpointManager
from src.core.errors import PipelineError, TrainingDiverged
from src.core.interrupts import Interrupted
from src.core.progress import progress
from src.core.runtime import (
    autocast_context,
    autocast_dtype,
    batch_labels,
    forward_logits,
    move_batch,
    resolve_device,
)
from src.scoring.metrics import MONITORABLE
from src.training import distributed
from src.training.early_stopping import BestTracker, EarlyStopping
from src.training.evaluation import count_parameters, evaluate  # noqa: F401  (the engine's public names)
from src.training.losses import (  # noqa: F401
    BinaryLogitLoss,
    check_output_dim,
    check_two_class_labels,
    default_criterion,
    output_size,
    predicted_classes,
)
from src.training.run_state import RunState
from src.training.schedules import build_scheduler, size_schedule  # noqa: F401

log = logging.getLogger(__name__)

SCHEDULER_INTERVALS = ("epoch", "step")


@dataclass(frozen=True)
class TrainerConfig:
    """How the engine runs, beside the LSTM training guide's Trainer arguments (see ``Trainer``)."""

    scheduler_interval: str = "epoch"  # 'step': after every optimizer step; 'epoch': after validation
    monitor: str = "val_loss"  # picks the best checkpoint, drives early stopping and ReduceLROnPlateau
    device: str | torch.device = "auto"
    mixed_precision: bool = False
    max_checkpoints: int = 5
    save_best_n: int = 3
    checkpoint_name: str = "checkpoint_epoch_{epoch}.pt"
    best_model_name: str = "best_model.pt"
    early_stopping_min_delta: float = 0.0
    progress: bool = True  # a tqdm bar on a terminal, a line a minute in a log (rank 0 only)
    fingerprint: dict | None = None  # identifies the run in every checkpoint (src.checkpoints.resume)
    on_publish: Callable[[dict], None] | None = None  # writes what goes beside the published best model
    on_epoch_end: Callable[[int, dict], None] | None = None  # (epoch, metrics) after each epoch; may raise
    training_log: Any = None  # e.g. src.training.live.DVCLiveLog: log_step and log_epoch on rank 0


def _check_count(value: Any, name: str, least: int) -> None:
    """``value`` is an int of at least ``least`` (not a bool), else a PipelineError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise PipelineError(f"{name} = {value!r}: expected a whole number of at least {least}")


# ---- the trainer ------------------------------------------------------------------------------------
class Trainer(RunState):
    """Trains ``model`` on ``train_loader``, validates on ``val_loader`` every epoch, checkpoints.

    scheduler_interval: 'step' steps the scheduler after every optimizer step (linear warmup for
    BERT); 'epoch' steps it after validation (StepLR, cosine), and ReduceLROnPlateau gets the
    monitored validation value. ``monitor`` (val_loss | val_accuracy | val_macro_recall |
    val_macro_f1) picks the best checkpoint, drives early stopping and ReduceLROnPlateau.
    ``fingerprint`` (see src.checkpoints.resume) identifies the run in every checkpoint; ``resume()``
    continues only from checkpoints that carry the same one.

    The best model of a run in progress is staged; ``best_model.pt`` is replaced only when the run
    finishes, and then ``on_publish(published)`` (its metadata, with the new ``model_id``) writes
    whatever must describe the same model beside it (a config, a vocabulary, an export), before the
    run is recorded as finished. Until then the directory keeps the previous run's complete model.

    ``training_log`` (e.g. src.training.live.DVCLiveLog) gets ``log_step(step, loss, learning_rate)`` after every
    optimizer step and ``log_epoch(step, epoch, metrics)`` after every validation, on the main
    process only; the engine needs nothing of it when there is none.

    Under torchrun with several processes (src.training.distributed) training steps run through
    DDP, validation is gathered from all ranks, and only rank 0 writes checkpoints and publishes.
    """

    def __init__(
        self,
        model: nn.Module,
        train_loader: Iterable,
        val_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        criterion: nn.Module | None = None,
        scheduler: Any = None,
        gradient_clip: float | None = 1.0,
        checkpoint_dir: str | os.PathLike = "checkpoints",
        config: TrainerConfig | None = None,
        **settings: Any,
    ):
        # the LSTM training guide's arguments, then how the engine runs: one TrainerConfig (``settings``, its
        # field names, replace the config's; an unknown name is a TypeError, as a wrong keyword is)
        self.config = config = dataclasses.replace(config or TrainerConfig(), **settings)
        if config.scheduler_interval not in SCHEDULER_INTERVALS:
            raise PipelineError(f"scheduler_interval = {config.scheduler_interval!r}: expected 'epoch' or 'step'")
        if config.monitor not in MONITORABLE:
            raise PipelineError(f"monitor = {config.monitor!r}: expected one of {', '.join(MONITORABLE)}")
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        # Data-parallel under torchrun: training steps go through DDP, which all-reduces the
        # gradients; self.model stays the plain module (evaluation, checkpoints, export).
        self.world_size, self.is_main_process = distributed.world_size(), distributed.is_main_process()
        if self.world_size > 1:
            distributed.check_same_run(config.fingerprint)  # before DDP finds the models' shapes differ
        self.parallel_model = (
            self.model
            if self.world_size == 1
            else nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        )
        self.base_seed = torch.initial_seed()  # the stage's seed: per-rank dropout streams derive from it
        self.train_loader, self.val_loader = train_loader, val_loader
        check_two_class_labels(model, {"train_loader": train_loader, "val_loader": val_loader})
        self.optimizer = optimizer
        self.criterion = criterion if criterion is not None else default_criterion(model)  # one logit: BCE
        self.criterion.to(self.device)
        self.scheduler = scheduler
        self.scheduler_interval = config.scheduler_interval
        self.gradient_clip = gradient_clip
        self.monitor = config.monitor
        self.mixed_precision = config.mixed_precision
        # fp16 gradients underflow without loss scaling; for bf16 and fp32 the scaler is a pass-through
        self.grad_scaler = torch.amp.GradScaler(
            "cuda", enabled=autocast_dtype(self.device, config.mixed_precision) == torch.float16
        )
        self.early_stopping_min_delta = config.early_stopping_min_delta
        self.progress = config.progress and self.is_main_process
        self.fingerprint = config.fingerprint
        self.on_epoch_end = config.on_epoch_end  # called with (epoch, metrics) after each epoch; may raise to stop
        self.training_log = config.training_log if self.is_main_process else None  # rank 0 alone logs
        best_by = dict(DEFAULT_BEST_BY)
        best_by.setdefault(config.monitor.removeprefix("val_"), config.monitor)
        self.checkpoints = CheckpointManager(
            checkpoint_dir,
            max_checkpoints=config.max_checkpoints,
            save_best_n=config.save_best_n,
            checkpoint_name=config.checkpoint_name,
            best_model_name=config.best_model_name,
            best_by=best_by,
            stage_best=True,
        )
        self.on_publish = config.on_publish
        self.model_id: str | None = None  # of the best model this trainer published
        self.checkpoint_dir = self.checkpoints.checkpoint_dir
        self.early_stopping: EarlyStopping | None = None
        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimizer steps taken
        self.best = BestTracker(config.monitor)  # the best epoch by `monitor`: the best checkpoint, the published model
        self.history = self._empty_history()

    @staticmethod
    def _empty_history() -> dict:
        return {
            "train_losses": [],
            "val_losses": [],
            "val_accuracies": [],
            "val_macro_recalls": [],
            "val_macro_f1s": [],
            "learning_rates": [],
            "epoch_times": [],
            "best_val_loss": None,
            "best_epoch": None,
            "monitor": None,
            "best_value": None,
            "total_time": 0.0,
        }

    # ---- one epoch -------------------------------------------------------------------------------
    def train_epoch(self) -> float:
        """One pass over the training data; returns the mean training loss per example."""
        self.model.train()
        sampler = getattr(self.train_loader, "batch_sampler", None)
        for source in (sampler, getattr(self.train_loader, "sampler", None)):
            if hasattr(source, "set_epoch"):  # epoch-seeded shuffling: resume sees the same batches
                source.set_epoch(self.epoch)
        if self.world_size > 1:
            self._check_sharded(sampler)
            # each rank its own dropout stream, a function of (seed, epoch, rank): resume stays exact
            torch.manual_seed(distributed.epoch_seed(self.base_seed, self.epoch))
        total_loss, n_seen = 0.0, 0
        # a bar on a terminal, a line a minute in a log (src.core.progress)
        bar = progress(self.train_loader, f"epoch {self.epoch + 1}", enabled=self.progress)
        for batch in bar:
            batch = move_batch(batch, self.device)
            labels = batch_labels(batch)
            with autocast_context(self.device, self.mixed_precision):
                logits = forward_logits(self.parallel_model, batch).float()
            loss = self.criterion(logits, labels)
            if self.world_size == 1:  # under DDP the epoch's all-reduced loss is checked, on every rank alike
                self._check_finite(loss, "training loss", f"step {self.global_step + 1}")

            self.optimizer.zero_grad(set_to_none=True)
            # DDP averages the ranks' gradients; weighting each rank's mean loss by its share of the
            # global batch makes that average the gradient of the global batch's mean loss
            self.grad_scaler.scale(loss * self._global_batch_share(batch["labels"])).backward()
            if self.gradient_clip:
                self.grad_scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(self.model.parameters(), self.gradient_clip)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
            self.global_step += 1

            batch_loss = loss.item()
            if self.training_log is not None:
                self.training_log.log_step(self.global_step, batch_loss, self.optimizer.param_groups[0]["lr"])
            total_loss += batch_loss * len(batch["labels"])
            n_seen += len(batch["labels"])
            bar.set_postfix(loss=f"{total_loss / n_seen:.4f}")
        if self.world_size > 1:  # the epoch's mean over every rank's examples
            total_loss, n_seen = distributed.all_reduce_sum(
                torch.tensor([total_loss, n_seen], dtype=torch.float64)
            ).tolist()
        if n_seen == 0:
            raise PipelineError("training data is empty")
        self._check_finite(total_loss, "training loss", "over the epoch")
        return total_loss / n_seen

    def _check_finite(self, value: torch.Tensor | float, what: str, where: str) -> None:
        """A NaN or infinite loss is an error before it reaches a checkpoint: the weights it would
        train are no model, and a NaN monitored value would be published as the best."""
        value = float(value.detach() if torch.is_tensor(value) else value)
        if value != value or value in (float("inf"), float("-inf")):
            raise TrainingDiverged(
                f"the {what} is {value} at epoch {self.epoch + 1}, {where}: training diverged (lower the learning "
                "rate, keep gradient clipping on, or check the inputs); nothing of this epoch was saved"
            )

    def _global_batch_share(self, labels: torch.Tensor) -> torch.Tensor | float:
        """world size x this rank's share of the global batch's loss weight: its examples' class weights
        for a weighted cross-entropy (the denominator of the criterion's mean), else its examples. One
        process: 1.0, no collective (multiplying by 1.0 is exact)."""
        if self.world_size == 1:
            return 1.0
        weight = getattr(self.criterion, "weight", None)
        local = weight[labels].sum() if weight is not None else torch.tensor(float(len(labels)), device=labels.device)
        local = local.detach().to(torch.float64)
        return (local * self.world_size / distributed.all_reduce_sum(local)).float()

    def _check_sharded(self, sampler: Any) -> None:
        """Under torchrun every rank must train on its own shard (BucketBatchSampler does it)."""
        if getattr(sampler, "num_replicas", 1) != self.world_size:
            raise PipelineError(
                f"the training loader is not sharded over the {self.world_size} processes: "
                "build it with src.data.batching.BucketBatchSampler after joining the process group"
            )

    def evaluate_model(self, data_loader: Iterable) -> dict[str, Any]:
        """loss, accuracy, macro_recall, macro_f1 and predictions of the current model on a loader."""
        return evaluate(self.model, data_loader, self.device, self.criterion, self.mixed_precision)

    # ---- the loop ----------------------------------------------------------------------------------
    def train(
        self,
        epochs: int,
        early_stopping_patience: int | None = None,
        save_best: bool = True,
        save_every: int | None = 1,
    ) -> dict:
        """Train until ``epochs`` epochs are completed in total (a resumed trainer continues its count).

        Each epoch: train, validate, step an epoch-level scheduler, track the best ``monitor`` value,
        checkpoint (every ``save_every`` epochs and whenever the model is the best so far when
        ``save_best``), then ask early stopping, which restores the best weights when it stops.
        On return the checkpoint registry records that training finished. SIGINT / SIGTERM raise
        ``Interrupted`` naming the last checkpoint (a save in progress completes first).
        """
        _check_count(epochs, "epochs", 1)
        if early_stopping_patience is not None:
            _check_count(early_stopping_patience, "early_stopping_patience", 1)
        if save_every is not None:
            _check_count(save_every, "save_every", 0)
        if early_stopping_patience is not None and (
            self.early_stopping is None or self.early_stopping.patience != early_stopping_patience
        ):
            self.early_stopping = EarlyStopping(early_stopping_patience, self.early_stopping_min_delta, self.monitor)
        self.history["monitor"] = self.monitor
        if self.epoch == 0:  # a fresh run: a step/cosine schedule spans the epochs asked for (a resumed one
            size_schedule(self.scheduler, epochs)  # keeps the size its checkpoint restored)
        try:
            while self.epoch < epochs and not self.stopped_early:
                self._run_epoch(epochs, save_best, save_every)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM via src.core.interrupts: say what is saved
            raise Interrupted(getattr(exc, "signum", signal.SIGINT), self._last_checkpoint_note()) from None
        if self.stopped_early:
            self.early_stopping.restore(self.model)
        if self.is_main_process:
            self._publish_best()
        return self.history

    @property
    def stopped_early(self) -> bool:
        return self.early_stopping is not None and self.early_stopping.stopped_epoch is not None

    def _run_epoch(self, epochs: int, save_best: bool, save_every: int | None) -> None:
        """Train, validate, step the scheduler, track the best, checkpoint, update early stopping."""
        started = time.perf_counter()
        train_loss = self.train_epoch()
        learning_rate = self.optimizer.param_groups[0]["lr"]  # the rate this epoch ended with
        val = self.evaluate_model(self.val_loader)
        self._check_finite(val["loss"] if val["loss"] is not None else 0.0, "validation loss", "after training")
        self.epoch += 1
        metrics = {
            "train_loss": train_loss,
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_macro_recall": val["macro_recall"],
            "val_macro_f1": val["macro_f1"],
            "learning_rate": learning_rate,
        }
        monitored = metrics[self.monitor]

        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(monitored)
            else:
                self.scheduler.step()

        is_best = self.best.record(monitored, self.epoch)
        self._record(metrics, time.perf_counter() - started)
        if self.training_log is not None:
            self.training_log.log_epoch(self.global_step, self.epoch, metrics)
        log.info(
            "epoch %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.4f  val_macro_recall %.4f  lr %.2e  %.1fs%s",
            self.epoch,
            epochs,
            train_loss,
            val["loss"],
            val["accuracy"],
            val["macro_recall"],
            learning_rate,
            self.history["epoch_times"][-1],
            "  *best*" if is_best else "",
        )

        should_stop = self.early_stopping is not None and self.early_stopping.update(monitored, self.model, self.epoch)
        periodic = bool(save_every) and self.epoch % save_every == 0
        if (periodic or (save_best and is_best) or should_stop) and self.is_main_process:
            # this epoch's own weights, before early stopping swaps the best ones back in; a run
            # resumed from this checkpoint sees stopped_early and only restores them
            self.save_checkpoint(None, is_best=save_best and is_best, metrics=metrics)
        if should_stop:
            log.info("early stopping: no %s improvement for %d epochs", self.monitor, self.early_stopping.patience)
        if self.on_epoch_end is not None:  # e.g. tune's pruner: report, and raise to stop this run
            self.on_epoch_end(self.epoch, metrics)

    def _last_checkpoint_note(self) -> str:
        if not self.is_main_process:
            return f"rank {distributed.rank()} of {self.world_size} (rank 0 names the last checkpoint)"
        if not self.checkpoints.entries:
            return "no checkpoint written yet"
        last = self.checkpoints.entries[-1]
        return f"last checkpoint {self.checkpoint_dir / last['file']} (epoch {last['epoch']})"

    def _record(self, metrics: dict, seconds: float) -> None:
        h = self.history
        h["train_losses"].append(metrics["train_loss"])
        h["val_losses"].append(metrics["val_loss"])
        h["val_accuracies"].append(metrics["val_accuracy"])
        h["val_macro_recalls"].append(metrics["val_macro_recall"])
        h["val_macro_f1s"].append(metrics["val_macro_f1"])
        h["learning_rates"].append(metrics["learning_rate"])
        h["epoch_times"].append(seconds)
        h["total_time"] += seconds
        h["best_val_loss"] = min(h["val_losses"])
        h["best_epoch"], h["best_value"] = self.best.best_epoch, self.best.best_value
