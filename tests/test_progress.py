"""Long loops report progress in a log: a line a minute when stderr is not a terminal (src/core/progress.py)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from src.core import progress as progress_module
from src.core.progress import LoggedProgress, progress


def test_a_log_gets_how_far_the_loop_is_with_the_time_left(caplog):
    caplog.set_level(logging.INFO, logger="src.core.progress")
    loop = progress(range(4), "epoch 1", every_s=0)  # pytest's stderr is no terminal
    assert isinstance(loop, LoggedProgress)
    for i in loop:
        loop.set_postfix(loss=f"{1 / (i + 1):.4f}")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("epoch 1: 1/4 batches (25%), 0s, about 0s left, loss=1.0000"), lines
    assert lines[-1].startswith("epoch 1: 4/4 batches (100%)"), lines
    assert len(lines) == 4


def test_a_short_loop_logs_nothing_and_other_ranks_never_log(caplog):
    caplog.set_level(logging.INFO, logger="src.core.progress")
    assert list(progress(range(3), "eval")) == [0, 1, 2]  # well under a minute
    assert list(progress(range(3), "eval", enabled=False, every_s=0)) == [0, 1, 2]
    assert not caplog.records


def test_an_unsized_loop_counts_without_a_total():
    assert LoggedProgress(iter(range(5)), "scoring", "text", 0).line(3, 75) == "scoring: 3 texts, 1m15s"


@pytest.mark.parametrize("every_s", [0.0])
def test_the_trainer_logs_its_epochs_progress_when_output_is_a_file(every_s, monkeypatch, caplog, tmp_path):
    from src.training import Trainer

    monkeypatch.setattr(progress_module, "PROGRESS_EVERY_S", every_s)
    caplog.set_level(logging.INFO, logger="src.core.progress")
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    loader = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)
    model = torch.nn.Linear(4, 2)
    Trainer(model, loader, loader, torch.optim.SGD(model.parameters(), lr=0.1), checkpoint_dir=tmp_path).train(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("epoch 1: 1/4 batches (25%)") and ", loss=" in lines[0], lines
