"""Live training logs for DVC: the Trainer's per-step and per-epoch figures, written with DVCLive.

The Trainer calls an optional ``training_log`` (anything with ``log_step`` and ``log_epoch``) on the
main process only; this module's ``DVCLiveLog`` is the one the train stages pass, so the engine
itself never imports DVCLive (tests and the guides' Python API train without it). It writes, under its
directory (declared in dvc.yaml: DVCLive's own dvc.yaml is off):

    metrics.json                       the latest step: train.loss, val.*, epoch, step (rewritten every
                                       few seconds and after every epoch: what a running stage has
                                       reached; a plain output, not a DVC metric, so the figures are not
                                       repeated in `dvc exp show`)
    plots/metrics/train/loss.tsv       step,loss: the training loss of every optimizer step
    plots/metrics/train/learning_rate.tsv  step,learning_rate: after every optimizer step
    plots/metrics/val/<figure>.tsv     step,<figure>: loss, accuracy, macro_recall, macro_f1 per epoch
    plots/metrics/epoch.tsv            step,epoch: the epoch each validation row belongs to

DVCLive is the one logger of training curves: dvc.yaml's plots draw these files (`dvc plots diff`,
one colour per revision) and src.review draws its curves from them.

Rows are written as they happen (no timestamps, so equal runs write equal files). Steps are the
Trainer's optimizer steps: a run resumed after a kill logs from its checkpoint's step on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# per epoch: the loss (is it over-fitting?), the figure that picks the best epoch, and the two others
VAL_FIGURES = ("loss", "accuracy", "macro_recall", "macro_f1")
SUMMARY_EVERY_S = 2.0  # metrics.json (what `dvc exp show` reads) during an epoch


class DVCLiveLog:
    """A DVCLive ``Live`` inside a DVC stage: no dvc.yaml of its own, no experiment of its own (the
    stage runs under `dvc repro` / `dvc exp run`, which records the experiment)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._live = None
        self._summary_at = float("-inf")  # when metrics.json was last rewritten

    @property
    def live(self):
        """DVCLive's logger, made at the first row: a stage that fails before training writes nothing here."""
        if self._live is None:
            from dvclive import Live  # here: only a process that logs imports DVCLive

            self._live = Live(dir=str(self.directory), dvcyaml=False, save_dvc_exp=False, report=None)
        return self._live

    def log_step(self, step: int, loss: float, learning_rate: float | None = None) -> None:
        """The training loss of optimizer step ``step`` (1-based), rank 0's batch under torchrun, and the
        learning rate after the step.

        One row appended per step; metrics.json is rewritten at most every SUMMARY_EVERY_S seconds
        and at every epoch. Not ``Live.next_step()`` per step: it re-reads every logged row for DVC
        Studio each time (even with Studio off), which grows with the run (docs/dvc_views.md)."""
        live = self.live
        live.step = step
        live.log_metric("train/loss", loss)
        if learning_rate is not None:
            live.log_metric("train/learning_rate", learning_rate)
        now = time.monotonic()
        if now - self._summary_at >= SUMMARY_EVERY_S:
            live.make_summary()
            self._summary_at = now

    def log_epoch(self, step: int, epoch: int, metrics: dict) -> None:
        """An epoch's validation figures (the Trainer's ``val_*`` metrics), at the step it ended on."""
        self.live.step = step
        self.live.log_metric("epoch", epoch)
        for figure in VAL_FIGURES:
            self.live.log_metric(f"val/{figure}", metrics[f"val_{figure}"])
        self.live.next_step()  # metrics.json, and DVC Studio when it is configured
        self._summary_at = time.monotonic()

    def close(self) -> None:
        """The final metrics.json. Both declared outputs exist even when a resumed run had no epoch
        left to train (it was killed while publishing its model)."""
        self.live.end()
        os.makedirs(self.live.plots_dir, exist_ok=True)
