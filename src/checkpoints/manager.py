"""Checkpoint files on disk: rotation, the best model, a JSON registry.

State comes from the checkpoint files themselves: each carries a metadata block (metrics, whether
it holds resume state), and the manager lists the files named like ``checkpoint_name`` in its
directory, so a kill between two writes leaves nothing to reconcile. The registry describes them
for people and tools; all that is read back from it is whether the run that wrote it finished.

Sizes: only the newest epoch checkpoint carries what resuming needs (optimizer, scheduler, RNG,
early-stopping state); the one before is rewritten to the model alone when a newer one is saved,
and ``best_model.pt`` holds the model alone.

Containment: a model directory is a persisted DVC output that can arrive from a remote, so no name
read from a file there is used as a path: checkpoints are found by listing the directory, and a
symbolic link there is never followed (DVC replaces links in a persisted output with copies before
it runs a stage, so none of a run's own remain).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import torch

from src.checkpoints.files import load_checkpoint_file
from src.checkpoints.resume import describe_change
from src.core.atomic import publish_copy, save_torch, write_json
from src.core.errors import PipelineError
from src.core.interrupts import deferred_interrupts
from src.scoring.metrics import higher_is_better

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
    checkpoint keeps what resuming needs. ``registry_name``, rewritten atomically after each save,
    describes the kept checkpoints, the rankings and whether the run finished (``mark_complete``).

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
        self.entries = self._scan()  # the metadata of each readable epoch checkpoint on disk, oldest first
        self.training_complete = self._read_registry()

    # ---- state, read from the files ----------------------------------------------------------------
    def _epoch_of(self, name: Any) -> int | None:
        """The epoch in a file name made from ``checkpoint_name``; None for any other name or value."""
        prefix, _, suffix = self.checkpoint_name.partition("{epoch}")
        epoch = name[len(prefix) : len(name) - len(suffix)] if isinstance(name, str) else ""
        matches = isinstance(name, str) and name.startswith(prefix) and name.endswith(suffix)
        return int(epoch) if matches and epoch.isascii() and epoch.isdigit() else None

    def epoch_checkpoints(self) -> list[Path]:
        """Files named like ``checkpoint_name`` on disk, newest epoch first, symbolic links left out."""
        prefix, _, suffix = self.checkpoint_name.partition("{epoch}")
        found = [(self._epoch_of(path.name), path) for path in self.checkpoint_dir.glob(f"{prefix}*{suffix}")]
        return [path for epoch, path in sorted(found, reverse=True) if epoch is not None and self._is_own_file(path)]

    @staticmethod
    def _is_own_file(path: Path) -> bool:
        """A regular file of this directory: never a symbolic link (it could lead anywhere)."""
        if path.is_symlink():
            log.warning("%s: a symbolic link, not a checkpoint written here; ignored", path)
            return False
        return path.is_file()

    def _scan(self) -> list[dict]:
        """Each readable epoch checkpoint's metadata block, with the file name and epoch on disk (an
        unreadable file is left for resume() to report)."""
        entries = []
        for path in reversed(self.epoch_checkpoints()):
            try:
                checkpoint = load_checkpoint_file(path, mmap=True)
            except PipelineError:
                continue
            metadata = checkpoint.get("metadata") if isinstance(checkpoint.get("metadata"), dict) else {}
            metrics = metadata.get("metrics") if isinstance(metadata.get("metrics"), dict) else {}
            entries.append(
                {
                    **metadata,
                    "file": path.name,
                    "epoch": self._epoch_of(path.name),
                    "metrics": {
                        k: float(v)
                        for k, v in metrics.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)
                    },
                    "resume_state": holds_resume_state(checkpoint),
                }
            )
        return entries

    def _read_registry(self) -> bool:
        """Whether the run that wrote the registry finished; what else it lists is not used, and
        entries naming no checkpoint file of this directory are reported."""
        path, registry, problem = self.registry_path, None, "not a JSON object"
        if path.is_symlink():
            problem = "a symbolic link"
        elif not path.exists():
            return False
        else:
            try:
                registry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:  # ValueError: not JSON, not UTF-8
                problem = f"unreadable ({exc.__class__.__name__})"
        if not isinstance(registry, dict):
            log.warning(
                "%s: %s; ignored, rebuilt from the %d checkpoint file(s) here", path, problem, len(self.entries)
            )
            return False
        listed = registry.get("checkpoints") if isinstance(registry.get("checkpoints"), list) else []
        strays = [e for e in listed if not isinstance(e, dict) or self._epoch_of(e.get("file")) is None]
        if strays:
            log.warning(
                "%s: ignored what is not safe to use: %s",
                path,
                "; ".join(
                    f"{json.dumps(e, default=str)[:80]} is not a checkpoint file of this directory" for e in strays
                ),
            )
        return registry.get("training_complete") is True

    # ---- writing -------------------------------------------------------------------------------
    def save_state(
        self, state: dict, epoch: int, metrics: dict[str, float], is_best: bool = False, filename: str | None = None
    ) -> Path:
        """Write ``state`` (with a metadata block added) as this epoch's checkpoint, then rotate.
        SIGINT / SIGTERM wait until all of it is written: a stopped run leaves a consistent directory."""
        filename = filename or self.checkpoint_name.format(epoch=epoch)
        metadata = {
            "file": filename,
            "epoch": epoch,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "torch_version": str(torch.__version__),
            "metrics": {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
            "resume_state": holds_resume_state(state),
        }
        with deferred_interrupts():
            checkpoint = {**state, "metadata": metadata}
            save_torch(checkpoint, self.checkpoint_dir / filename)
            self.settle(filename, (self.checkpoint_dir / filename, checkpoint) if is_best else None)
        return self.checkpoint_dir / filename

    def settle(self, newest: str, best: tuple[Path, dict] | None = None) -> None:
        """After writing ``newest`` (or resuming from it, to finish what a SIGKILL cut short): stage
        the model of ``best`` (a checkpoint's path and contents) as the best model, rotate, keep the
        resume state in ``newest`` alone (an older one's optimizer state is 2x the model with Adam,
        and resuming starts from the newest), rewrite the registry."""
        with deferred_interrupts():
            if best is not None:
                model_id = secrets.token_hex(8)
                model = {**model_only(best[1]), "model_id": model_id}
                model["metadata"].update(file=self.best_model_name, source=best[0].name, model_id=model_id)
                save_torch(
                    model, self.staged_best_path if self.stage_best else self.checkpoint_dir / self.best_model_name
                )
            self.entries = self._scan()
            keep = {e["file"] for e in self.entries[-self.max_checkpoints :]}
            for name in self.best_by:
                keep |= {e["file"] for e in self.ranking(name)[: self.save_best_n]}
            for entry in self.entries:
                path = self.checkpoint_dir / entry["file"]
                if entry["file"] not in keep:
                    path.unlink(missing_ok=True)
                elif entry["resume_state"] and entry["file"] != newest:
                    save_torch(model_only(load_checkpoint_file(path, mmap=True)), path)
                    entry["resume_state"] = False
            self.entries = [e for e in self.entries if e["file"] in keep]
            self.training_complete = False
            self._write_registry()

    def publish_best(self) -> dict | None:
        """Put the staged best model in place as ``best_model_name`` (a hard link or an atomic copy); it
        stays staged until ``mark_complete``, so a run stopped in between publishes it again when it
        resumes. Returns its metadata (``model_id``, ``epoch``, ``metrics``, ``source``), or None."""
        staged = self.staged_best() if self.stage_best else None
        if staged is None:
            return None
        with deferred_interrupts():
            publish_copy(self.staged_best_path, self.checkpoint_dir / self.best_model_name)
            self._write_registry()
        return {**staged.get("metadata", {}), "model_id": staged.get("model_id"), "file": self.best_model_name}

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

    def save_checkpoint(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        epoch: int,
        train_loss: float,
        val_loss: float,
        val_accuracy: float,
        is_best: bool = False,
        scheduler: Any = None,
        **extra_metrics: float,
    ) -> Path:
        """Convenience form: model + optimizer (+ scheduler) state with the usual metrics."""
        state = {
            "epoch": epoch,
            "model_state_dict": model.state_dict(),
            "optimizer_state_dict": optimizer.state_dict(),
            "scheduler_state_dict": scheduler.state_dict() if scheduler is not None else None,
        }
        metrics = {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy, **extra_metrics}
        return self.save_state(state, epoch, metrics, is_best=is_best)

    def _write_registry(self) -> None:
        best_model = None  # the staged model while a run is in progress, else the published one
        for path in (self.staged_best_path, self.checkpoint_dir / self.best_model_name):
            if best_model is None and path.is_file() and not path.is_symlink():
                with contextlib.suppress(PipelineError):
                    best_model = load_checkpoint_file(path, mmap=True).get("metadata")
        write_json(
            self.registry_path,
            {
                "best_model": best_model,
                "best": {
                    name: [
                        {"file": e["file"], "epoch": e["epoch"], metric: e["metrics"][metric]}
                        for e in self.ranking(name)[: self.save_best_n]
                    ]
                    for name, metric in self.best_by.items()
                },
                "checkpoints": self.entries,
                "training_complete": self.training_complete,
            },
        )

    # ---- resuming ------------------------------------------------------------------------------
    def resume_point(
        self, fingerprint: dict | None, map_location: Any = "cpu", repair: bool = True
    ) -> tuple[Path, dict] | None:
        """The newest checkpoint to continue from, read, or None after clearing the directory for a
        fresh run (the published best model stays until that run publishes its own).

        It must carry ``fingerprint`` (else the log says what changed) and resume state, and the run
        that wrote it must not have finished. An unreadable one (truncated, not a checkpoint) is
        reported and removed, and the one before it tried. With ``repair`` (the main process) the
        directory is brought up to date with it: a kill right after saving it can leave the best
        model unstaged and the rotation undone.
        """
        self.remove_partial_writes()
        unreadable = False
        for path in self.epoch_checkpoints():
            try:
                checkpoint = load_checkpoint_file(path, map_location=map_location)
            except PipelineError as exc:
                log.warning("%s; removed it, trying the previous checkpoint", exc)
                path.unlink(missing_ok=True)
                unreadable = True
                continue
            reason = describe_change(checkpoint.get("fingerprint"), fingerprint)
            if reason is None and self.training_complete:
                reason = "the run that wrote it had finished"
            if reason is None and not holds_resume_state(checkpoint):
                reason = "it holds the model only (the newest checkpoint keeps the resume state)"
            best = self._best_to_stage(path, checkpoint, fingerprint) if reason is None else None
            reason = best if isinstance(best, str) else reason
            if reason is not None:
                log.info("not resuming from %s: %s; training from scratch", path, reason)
                break
            if repair:
                self.settle(path.name, best)
            return path, checkpoint
        else:
            if unreadable:
                log.warning("no readable checkpoint left in %s; training from scratch", self.checkpoint_dir)
        self.clear()
        return None

    def _best_to_stage(self, path: Path, checkpoint: dict, fingerprint: dict | None) -> tuple[Path, dict] | str | None:
        """The checkpoint (file, contents) to stage the best model from again when resuming from
        ``checkpoint``: a kill can land between writing a checkpoint and staging its model. None when
        the staged one is already the best epoch's; a reason (str) when that epoch's weights are gone."""
        best_epoch = checkpoint.get("best_epoch")
        if best_epoch is None:
            return None
        staged = self.staged_best()
        if staged is not None and staged["epoch"] == best_epoch and staged.get("fingerprint") == fingerprint:
            return None
        if best_epoch == checkpoint["epoch"]:
            return path, checkpoint
        best_path = self.checkpoint_dir / self.checkpoint_name.format(epoch=best_epoch)
        try:
            best = load_checkpoint_file(best_path, map_location="cpu", mmap=True)
        except PipelineError as exc:
            return f"the best epoch's model is gone ({exc})"
        return (best_path, best) if best.get("fingerprint") == fingerprint else f"{best_path} is from another run"

    # ---- clean-up ------------------------------------------------------------------------------
    def clear(self) -> None:
        """Remove the training state (every checkpoint, the staged best model, the registry), so that
        nothing stale mixes into a fresh run. The published best model stays until the new run
        publishes its own."""
        for path in [*self.epoch_checkpoints(), self.staged_best_path, self.registry_path]:
            path.unlink(missing_ok=True)  # plain names inside the directory; a link is removed, not followed
        self.remove_partial_writes()
        self.entries, self.training_complete = [], False

    def remove_partial_writes(self) -> None:
        """Temp files of atomic writes cut short by SIGKILL (complete files are never temp files)."""
        for path in self.checkpoint_dir.glob(".*.tmp"):
            if path.is_file() or path.is_symlink():
                path.unlink()

    # ---- reading -------------------------------------------------------------------------------
    def ranking(self, name: str) -> list[dict]:
        """Kept checkpoints that carry the ranking's metric, best first (ties: earlier epoch first)."""
        metric = self.best_by[name]
        sign = -1.0 if higher_is_better(metric) else 1.0
        return sorted(
            (e for e in self.entries if metric in e["metrics"]), key=lambda e: (sign * e["metrics"][metric], e["epoch"])
        )

    def get_checkpoint_info(self, path: str | os.PathLike) -> dict:
        """The metadata block of a checkpoint file (epoch, metrics, time, torch version)."""
        return load_checkpoint_file(path, mmap=True)["metadata"]

    def load_best_checkpoint(self, metric: str = "loss") -> Path | None:
        """Path of the best kept checkpoint by ``metric`` ('loss', 'accuracy' or another ranking name)."""
        if metric not in self.best_by:
            raise PipelineError(f"unknown ranking {metric!r}: expected one of {', '.join(self.best_by)}")
        ranked = self.ranking(metric)
        return self.checkpoint_dir / ranked[0]["file"] if ranked else None


def create_checkpoint_manager(
    checkpoint_dir: str | os.PathLike = "checkpoints", max_checkpoints: int = 5, save_best_n: int = 3, **kwargs: Any
) -> CheckpointManager:
    return CheckpointManager(checkpoint_dir, max_checkpoints=max_checkpoints, save_best_n=save_best_n, **kwargs)
