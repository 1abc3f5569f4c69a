"""The one training engine (LSTM and BERT): train / validate / checkpoint / early-stop / resume.

Batches are dicts: ``labels`` plus the model's keyword inputs (``input_ids`` + ``lengths`` for the
LSTM; ``input_ids`` + ``attention_mask`` for BERT). The model's output is a logits tensor or an
object with ``.logits`` (Hugging Face models).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from src.checkpoints.files import load_checkpoint_file
from src.checkpoints.manager import (
    DEFAULT_BEST_BY,
    CheckpointManager,
    holds_resume_state,
    rng_state,
    set_rng_state,
)
from src.core.errors import PipelineError
from src.core.interrupts import Interrupted, deferred_interrupts
from src.core.runtime import autocast_context, autocast_dtype, forward_logits, move_batch, resolve_device
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
from src.training.schedules import build_scheduler, size_schedule  # noqa: F401

log = logging.getLogger(__name__)

# A checkpoint's resume state, one list for saving and restoring: key -> the Trainer attribute whose
# state_dict() it holds (None when the attribute is None), then plain values saved and restored as they are.
RESUME_STATE = {
    "model_state_dict": "model",
    "optimizer_state_dict": "optimizer",
    "scheduler_state_dict": "scheduler",
    "grad_scaler_state_dict": "grad_scaler",
    "early_stopping": "early_stopping",
    "averaged_model_state_dict": "averaged",  # the weight average's running state (ema_decay)
}
OPTIMIZER_STATE = ("optimizer_state_dict", "scheduler_state_dict")  # restored only with load_optimizer
RESUME_VALUES = ("epoch", "global_step", "history")

SCHEDULER_INTERVALS = ("epoch", "step")


# ---- the trainer ------------------------------------------------------------------------------------
class Trainer:
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
        *,
        scheduler_interval: str = "epoch",
        monitor: str = "val_loss",
        device: str | torch.device = "auto",
        mixed_precision: bool = False,
        max_checkpoints: int = 5,
        save_best_n: int = 3,
        checkpoint_name: str = "checkpoint_epoch_{epoch}.pt",
        best_model_name: str = "best_model.pt",
        early_stopping_min_delta: float = 0.0,
        progress: bool = True,
        fingerprint: dict | None = None,
        on_publish: Callable[[dict], None] | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None,
        training_log: Any = None,
        ema_decay: float | None = None,
        rdrop_alpha: float = 0.0,
    ):
        if scheduler_interval not in SCHEDULER_INTERVALS:
            raise PipelineError(f"scheduler_interval = {scheduler_interval!r}: expected 'epoch' or 'step'")
        if monitor not in MONITORABLE:
            raise PipelineError(f"monitor = {monitor!r}: expected one of {', '.join(MONITORABLE)}")
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        # Data-parallel under torchrun: training steps go through DDP, which all-reduces the
        # gradients; self.model stays the plain module (evaluation, checkpoints, export).
        self.world_size, self.is_main_process = distributed.world_size(), distributed.is_main_process()
        if self.world_size > 1:
            distributed.check_same_run(fingerprint)  # before DDP finds the models' shapes differ
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
        self.scheduler_interval = scheduler_interval
        self.gradient_clip = gradient_clip
        self.monitor = monitor
        self.mixed_precision = mixed_precision
        # fp16 gradients underflow without loss scaling; for bf16 and fp32 the scaler is a pass-through
        self.grad_scaler = torch.amp.GradScaler(
            "cuda", enabled=autocast_dtype(self.device, mixed_precision) == torch.float16
        )
        self.early_stopping_min_delta = early_stopping_min_delta
        self.progress = progress and self.is_main_process
        if rdrop_alpha < 0:
            raise PipelineError(f"rdrop_alpha = {rdrop_alpha!r}: expected a number >= 0 (0: off)")
        self.rdrop_alpha = rdrop_alpha
        self.fingerprint = fingerprint
        self.on_epoch_end = on_epoch_end  # called with (epoch, metrics) after each epoch; may raise to stop
        self.training_log = training_log if self.is_main_process else None  # rank 0 alone logs
        best_by = dict(DEFAULT_BEST_BY)
        best_by.setdefault(monitor.removeprefix("val_"), monitor)
        self.checkpoints = CheckpointManager(
            checkpoint_dir,
            max_checkpoints=max_checkpoints,
            save_best_n=save_best_n,
            checkpoint_name=checkpoint_name,
            best_model_name=best_model_name,
            best_by=best_by,
            stage_best=True,
        )
        self.on_publish = on_publish
        self.model_id: str | None = None  # of the best model this trainer published
        self.checkpoint_dir = self.checkpoints.checkpoint_dir
        self.early_stopping: EarlyStopping | None = None
        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimizer steps taken
        self.best = BestTracker(monitor)  # the best epoch by `monitor`: the best checkpoint, the published model
        self.history = self._empty_history()
        # An exponential moving average of the weights, updated after every optimizer step: validated,
        # checkpointed and published in place of the last step's weights, which training continues from
        self.averaged = (
            None
            if ema_decay is None
            else torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema_decay)
            )
        )
        self.training_weights: dict | None = None  # the last step's weights while the average is swapped in

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
        # disable=None: a bar on a terminal only, so logs and `dvc repro` output stay readable
        bar = tqdm(
            self.train_loader, desc=f"epoch {self.epoch + 1}", leave=False, disable=None if self.progress else True
        )
        for batch in bar:
            batch = move_batch(batch, self.device)
            loss, consistency = self._loss_terms(batch)

            self.optimizer.zero_grad(set_to_none=True)
            # DDP averages the ranks' gradients; weighting each rank's mean loss by its share of the
            # global batch makes that average the gradient of the global batch's mean loss (R-Drop's
            # term is a plain mean over examples, so it is weighted by the rank's share of examples)
            weighted_share, example_share = self._global_batch_shares(batch["labels"])
            step_loss = loss * weighted_share
            if consistency is not None:
                step_loss = step_loss + consistency * example_share
                loss = loss + consistency
            self.grad_scaler.scale(step_loss).backward()
            if self.gradient_clip:
                self.grad_scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
                nn.utils.clip_grad_norm_(self.model.parameters(), self.gradient_clip)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
            if self.averaged is not None:
                self.averaged.update_parameters(self.model)
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
        return total_loss / n_seen

    def _loss_terms(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the criterion on one batch, R-Drop's consistency term or None). With ``rdrop_alpha``
        (R-Drop, Liang et al. 2021) the batch goes through the model twice in one forward (two dropout
        masks per example), the criterion averages over both passes, and the term, ``rdrop_alpha`` x
        the symmetric KL divergence between the two predicted distributions (mean over examples),
        pulls them together."""
        if self.rdrop_alpha:
            batch = {k: torch.cat([v, v]) if torch.is_tensor(v) else v for k, v in batch.items()}
        with autocast_context(self.device, self.mixed_precision):
            logits = forward_logits(self.parallel_model, batch).float()
        loss = self.criterion(logits, batch["labels"])  # R-Drop: the mean of the two passes' (weighted) means
        if not self.rdrop_alpha:
            return loss, None
        if logits.dim() == 1 or logits.shape[-1] == 1:  # one logit (BCE): the two-class distribution
            logits = logits.reshape(-1, 1)
            logits = torch.cat([logits, torch.zeros_like(logits)], dim=-1)
        first, second = logits.log_softmax(-1).chunk(2)
        kl = nn.functional.kl_div
        symmetric_kl = (
            kl(first, second, log_target=True, reduction="batchmean")
            + kl(second, first, log_target=True, reduction="batchmean")
        ) / 2
        return loss, self.rdrop_alpha * symmetric_kl

    def _global_batch_shares(self, labels: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """world size x this rank's share of the global batch, (by loss weight, by examples), in one
        all-reduce. Loss weight: its examples' class weights for a weighted cross-entropy (the
        denominator of the criterion's mean), else its examples. One process: (1.0, 1.0), no
        collective (multiplying by 1.0 is exact)."""
        if self.world_size == 1:
            return 1.0, 1.0
        weight = getattr(self.criterion, "weight", None)
        examples = torch.tensor(float(len(labels)), device=labels.device)
        local = torch.stack([weight[labels].sum() if weight is not None else examples, examples])
        local = local.detach().to(torch.float64)
        shares = (local * self.world_size / distributed.all_reduce_sum(local)).float()
        return shares[0], shares[1]

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
        if self.averaged is not None:  # the epoch's model is the average: validate and checkpoint it
            self.training_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(self.averaged.module.state_dict())
        val = self.evaluate_model(self.val_loader)
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
        self._continue_from_training_weights()

    def _continue_from_training_weights(self) -> None:
        """With a weight average, the next epoch trains on from the last step's weights, not the average's."""
        if self.training_weights is not None:
            self.model.load_state_dict(self.training_weights)
            self.training_weights = None

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

    # ---- checkpoints and resume ------------------------------------------------------------------
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
                if name != "averaged" or self.averaged is not None
            },
            **{key: getattr(self, key) for key in RESUME_VALUES},
            "best_value": self.best.best_value,
            "best_epoch": self.best.best_epoch,
            "rng_state": rng_state(),
            # with a weight average, model_state_dict is the average; training continues from these
            **({"training_model_state_dict": self.training_weights} if self.training_weights is not None else {}),
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
        if checkpoint.get("training_model_state_dict") is not None:  # model_state_dict was the weight average
            self.model.load_state_dict(checkpoint["training_model_state_dict"])
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

    # ---- reporting -----------------------------------------------------------------------------------
    def get_training_summary(self) -> dict:
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


# ---- factory ----------------------------------------------------------------------------------------


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
