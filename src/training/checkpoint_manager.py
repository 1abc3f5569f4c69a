"""Checkpoint files on disk (rotation, best-model tracking, a JSON registry) and early stopping.

Sizes: only the newest epoch checkpoint carries what resuming needs (optimizer, scheduler, RNG,
early-stopping state); older ones are rewritten to the model alone when a newer one is saved, and
``best_model.pt`` holds the model alone.

Containment: a model directory is a persisted DVC output that can arrive from a remote, so nothing
read from it (registry entries, metadata inside a checkpoint) is used as a path before it is
checked to be a plain file name inside the directory. A training run never follows a symbolic link
there either (DVC replaces links in a persisted output with copies before it runs a stage, so
none of its own remain).
"""
from __future__ import annotations

import copy
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import torch

from src.atomic import publish_copy, save_torch, write_json
from src.errors import PipelineError
from src.interrupts import deferred_interrupts
from src.scoring.metrics import higher_is_better, is_improvement
# the checkpoint-file reader is shared with loading trained models for scoring
from src.models.checkpoint_files import load_checkpoint_file
from src.paths import is_plain_file_name

log = logging.getLogger(__name__)

# Which metric each "best" ranking follows; the Trainer adds its monitored metric when it is another one.
DEFAULT_BEST_BY = {"loss": "val_loss", "accuracy": "val_accuracy"}
# What a model-only file keeps of a checkpoint: the weights and what identifies and rebuilds the model.
MODEL_KEYS = ("epoch", "model_state_dict", "model_config", "fingerprint", "model_id", "metadata")


def holds_resume_state(checkpoint: dict) -> bool:
    """Whether a checkpoint can continue training (optimizer state) or holds the model alone."""
    return checkpoint.get("optimizer_state_dict") is not None


def model_only(checkpoint: dict) -> dict:
    """The model part of a checkpoint: weights, epoch, model config, fingerprint, metadata."""
    slim = {key: checkpoint[key] for key in MODEL_KEYS if key in checkpoint}
    metadata = checkpoint.get("metadata")
    slim["metadata"] = {**(metadata if isinstance(metadata, dict) else {}), "resume_state": False}
    return slim


class CheckpointManager:
    """Writes checkpoints atomically and keeps the directory bounded.

    Kept on disk: the ``max_checkpoints`` most recent epoch checkpoints, plus the ``save_best_n``
    best by each ranking in ``best_by`` (loss and accuracy by default), plus ``best_model_name``
    (the model of the checkpoint the caller marked best, without optimizer state). Only the newest
    checkpoint keeps what resuming needs (optimizer, scheduler, RNG, early stopping); each older one
    is rewritten to the model alone when a newer one is saved. ``registry_name`` is a JSON file
    describing every kept checkpoint and the rankings, rewritten atomically after each save; it also
    records whether the training that wrote them finished (``mark_complete``).

    With ``stage_best`` (how the Trainer uses it) the best model of the run in progress is written to
    ``best_model.in_progress.pt``, and only ``publish_best()`` puts it in place as ``best_model_name``:
    until a run finishes, the directory keeps serving the previous run's complete model.
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
        stage_best: bool = False,
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
        self.stage_best = stage_best
        stem, suffix = os.path.splitext(best_model_name)
        self.staged_best_path = self.checkpoint_dir / f"{stem}.in_progress{suffix}"
        self.entries: list[dict] = []  # metadata of every checkpoint still on disk, oldest first
        self.best_model: dict | None = None
        self.training_complete = False
        self._reported: set[str] = set()
        self._load_registry()  # pick up where an earlier run in this directory left off

    # ---- the registry, checked before use --------------------------------------------------------
    def _load_registry(self) -> None:
        """Read the registry. It comes with the directory (from a DVC remote, say), so it is checked,
        not trusted: an entry that is not a checkpoint file of this directory is reported and dropped,
        and an unreadable registry is rebuilt from the checkpoint files themselves."""
        path = self.registry_path
        if not path.exists() and not path.is_symlink():
            return
        registry, problems = None, []
        if path.is_symlink():
            problems.append("a symbolic link")
        else:
            try:
                registry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:  # ValueError: not JSON, not UTF-8
                problems.append(f"unreadable ({exc.__class__.__name__})")
        if registry is not None and not isinstance(registry, dict):
            registry = None
            problems.append("not a JSON object")
        if registry is None:
            self.entries = self._entries_from_files()
            log.warning("%s: %s; ignored, rebuilt from the %d checkpoint file(s) here", path, "; ".join(problems),
                        len(self.entries))
            return
        checkpoints = registry.get("checkpoints", [])
        if not isinstance(checkpoints, list):
            problems.append("'checkpoints' is not a list")
            checkpoints = []
        for raw in checkpoints:
            entry = self._valid_entry(raw)
            if entry is None:
                problems.append(f"{_brief(raw)} is not a checkpoint file of this directory")
            elif self._is_own_file(self.checkpoint_dir / entry["file"]):
                self.entries = [e for e in self.entries if e["file"] != entry["file"]] + [entry]
        best = registry.get("best_model")
        if isinstance(best, dict) and best.get("file") in (self.best_model_name, self.staged_best_path.name):
            self.best_model = best
        elif best is not None:
            problems.append(f"best_model {_brief(best)} is not this directory's best model")
        complete = registry.get("training_complete", False)
        if isinstance(complete, bool):
            self.training_complete = complete
        else:
            problems.append(f"training_complete = {_brief(complete)} is not true or false")
        if problems:
            log.warning("%s: ignored what is not safe to use: %s", path, "; ".join(problems))

    def _valid_entry(self, raw: Any, file: str | None = None) -> dict | None:
        """A registry entry (or a checkpoint's metadata block) fit to use, else None: ``file`` a plain
        ``.pt`` file name that is not the best model's, ``epoch`` an integer, ``metrics`` numbers."""
        if not isinstance(raw, dict):
            return None
        name = raw.get("file") if file is None else file
        epoch, metrics = raw.get("epoch"), raw.get("metrics", {})
        suffix = Path(self.checkpoint_name).suffix or ".pt"
        # not a hidden name either: temp files of atomic writes start with "."
        if not (is_plain_file_name(name) and not name.startswith(".") and name.endswith(suffix)
                and name not in (self.best_model_name, self.staged_best_path.name)):
            return None
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            return None
        if not isinstance(metrics, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                for k, v in metrics.items()):
            return None
        return {**raw, "file": name, "metrics": {k: float(v) for k, v in metrics.items()}}

    def _is_own_file(self, path: Path) -> bool:
        """A regular file of this directory: never a symbolic link (it could lead anywhere)."""
        if path.is_symlink():
            if path.name not in self._reported:
                self._reported.add(path.name)
                log.warning("%s: a symbolic link, not a checkpoint written here; ignored", path)
            return False
        return path.is_file()

    def _entries_from_files(self) -> list[dict]:
        """Registry entries rebuilt from the metadata inside the epoch checkpoints on disk."""
        entries = []
        for path in reversed(self.epoch_checkpoints()):
            try:
                checkpoint = load_checkpoint_file(path, mmap=True)
            except PipelineError:
                continue  # resume() reports and removes it
            metadata = checkpoint.get("metadata")
            entry = self._valid_entry({**(metadata if isinstance(metadata, dict) else {}),
                                       "epoch": checkpoint["epoch"]}, file=path.name)
            if entry is not None:
                entries.append({**entry, "resume_state": holds_resume_state(checkpoint)})
        return entries

    # ---- writing -------------------------------------------------------------------------------
    def save_state(self, state: dict, epoch: int, metrics: dict[str, float], is_best: bool = False,
                   filename: str | None = None) -> Path:
        """Write ``state`` (with a metadata block added) as this epoch's checkpoint, then rotate.

        SIGINT / SIGTERM wait until the checkpoint, the best model, the rewriting of older checkpoints
        to the model alone and the registry are all written: a stopped run leaves a consistent
        directory to resume from.
        """
        filename = filename or self.checkpoint_name.format(epoch=epoch)
        metadata = {"file": filename, "epoch": epoch, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "torch_version": str(torch.__version__),
                    "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
                    "resume_state": holds_resume_state(state)}
        path = self.checkpoint_dir / filename
        with deferred_interrupts():
            checkpoint = {**state, "metadata": metadata}
            save_torch(checkpoint, path)
            self._track(metadata)
            if is_best:
                self._save_best(checkpoint)
            self._rotate()
            self._keep_resume_state_only_in(filename)
            self.training_complete = False
            self._write_registry()
        return path

    def adopt(self, path: Path, checkpoint: dict, is_best: bool, newest: bool = True) -> None:
        """Bring the registry and the best model up to date with a checkpoint resumed from: a SIGKILL
        between writing a checkpoint and updating them leaves them one save behind. The checkpoint's
        own metadata is checked like a registry entry; its file name is the one on disk. ``newest``:
        it is the checkpoint resumed from, so the others need no resume state."""
        metadata = checkpoint.get("metadata")
        entry = self._valid_entry({**(metadata if isinstance(metadata, dict) else {}), "epoch": checkpoint["epoch"]},
                                  file=path.name) or {"file": path.name, "epoch": checkpoint["epoch"], "metrics": {}}
        entry["resume_state"] = holds_resume_state(checkpoint)
        with deferred_interrupts():
            self._track(entry)
            if is_best:
                self._save_best({**checkpoint, "metadata": entry})
            if newest:
                self._keep_resume_state_only_in(path.name)
            self._write_registry()

    def _track(self, metadata: dict) -> None:
        self.entries = [e for e in self.entries if e["file"] != metadata["file"]] + [metadata]

    def _save_best(self, checkpoint: dict) -> None:
        """The model of ``checkpoint`` as the best model, stamped with a new model id."""
        model_id = secrets.token_hex(8)
        best = {**model_only(checkpoint), "model_id": model_id}
        best["metadata"].update(file=self.best_model_name, source=checkpoint["metadata"]["file"], model_id=model_id)
        save_torch(best, self.staged_best_path if self.stage_best else self.checkpoint_dir / self.best_model_name)
        self.best_model = best["metadata"]

    def _keep_resume_state_only_in(self, newest: str) -> None:
        """Rewrite every other kept checkpoint to the model alone (atomically): resuming starts from
        the newest, so the optimizer state of older ones (2x the model with Adam) is dead weight."""
        for entry in self.entries:
            if entry["file"] == newest or entry.get("resume_state") is False:
                continue
            path = self.checkpoint_dir / entry["file"]
            try:
                checkpoint = load_checkpoint_file(path, mmap=True)
            except PipelineError:
                continue  # gone or damaged: resume() reports it if it ever gets that far back
            if holds_resume_state(checkpoint):
                save_torch(model_only(checkpoint), path)
            entry["resume_state"] = False

    def publish_best(self) -> dict | None:
        """Put the staged best model in place as ``best_model_name`` (a hard link or an atomic copy).

        The staged file stays until ``mark_complete``, so a run stopped in between publishes the
        same model again when it resumes. Returns the published model's metadata (``model_id``,
        ``epoch``, ``metrics``, ``source``), or None when nothing is staged.
        """
        staged = self.staged_best_path
        if not self.stage_best or not self._is_own_file(staged):
            return None
        checkpoint = load_checkpoint_file(staged, mmap=True)
        with deferred_interrupts():
            publish_copy(staged, self.checkpoint_dir / self.best_model_name)
            self.best_model = {**checkpoint.get("metadata", {}), "model_id": checkpoint.get("model_id"),
                               "file": self.best_model_name}
            self._write_registry()
        return self.best_model

    def staged_best(self) -> dict | None:
        """The staged best model's checkpoint (tensors mapped, not read), or None if there is none."""
        if not self._is_own_file(self.staged_best_path):
            return None
        try:
            return load_checkpoint_file(self.staged_best_path, mmap=True)
        except PipelineError as exc:
            log.warning("%s", exc)
            return None

    def mark_complete(self) -> None:
        """Record that training finished: a rerun must train again, not resume into doing nothing."""
        if self.entries:  # nothing saved, nothing to resume (and no directory to create)
            self.training_complete = True
            self._write_registry()
        self.staged_best_path.unlink(missing_ok=True)  # published by now

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
            (self.checkpoint_dir / entry["file"]).unlink(missing_ok=True)  # a plain name here: see _valid_entry
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
        """Remove the training state (every checkpoint, the staged best model, the registry), so that
        nothing stale mixes into a fresh run. The published best model stays: it remains the
        directory's model until the new run publishes its own."""
        for path in [*self.epoch_checkpoints(), *self.list_checkpoints(), self.staged_best_path, self.registry_path]:
            path.unlink(missing_ok=True)  # plain names inside the directory; a link is removed, not followed
        self.remove_partial_writes()
        self.entries, self.best_model, self.training_complete = [], None, False

    def discard(self, path: Path) -> None:
        """Remove one checkpoint file (an unreadable one) and forget it."""
        path.unlink(missing_ok=True)
        self.entries = [e for e in self.entries if e["file"] != path.name]

    def remove_partial_writes(self) -> None:
        """Temp files of atomic writes cut short by SIGKILL (complete files are never temp files)."""
        for path in self.checkpoint_dir.glob(".*.tmp"):
            if path.is_file() or path.is_symlink():
                path.unlink()

    # ---- reading -------------------------------------------------------------------------------
    def list_checkpoints(self) -> list[Path]:
        return [self.checkpoint_dir / e["file"] for e in self.entries]

    def epoch_checkpoints(self) -> list[Path]:
        """Files named like ``checkpoint_name`` on disk, newest epoch first (the registry may lag
        behind the files by one save when the process was killed in between). Symbolic links are
        left out: they are not checkpoints written here, and following one could read anywhere."""
        prefix, _, suffix = self.checkpoint_name.partition("{epoch}")
        found = []
        for path in self.checkpoint_dir.glob(f"{prefix}*{suffix}"):
            epoch = path.name[len(prefix): len(path.name) - len(suffix)]
            if epoch.isascii() and epoch.isdigit() and self._is_own_file(path):
                found.append((int(epoch), path))
        return [path for _, path in sorted(found, reverse=True)]

    def get_checkpoint_info(self, path: str | os.PathLike) -> dict:
        """The metadata block of a checkpoint file (epoch, metrics, time, torch version)."""
        return load_checkpoint_file(path, mmap=True)["metadata"]

    def load_best_checkpoint(self, metric: str = "loss") -> Path | None:
        """Path of the best kept checkpoint by ``metric`` ('loss', 'accuracy' or another ranking name)."""
        if metric not in self.best_by:
            raise PipelineError(f"unknown ranking {metric!r}: expected one of {', '.join(self.best_by)}")
        ranked = self.ranking(metric)
        return self.checkpoint_dir / ranked[0]["file"] if ranked else None


def _brief(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


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
