"""The LSTM training guide's ``src/training/checkpoint_manager.py``: defined in src/checkpoints/manager.py."""

from __future__ import annotations

from src.checkpoints.manager import (
    DEFAULT_BEST_BY,
    BestTracker,
    CheckpointManager,
    EarlyStopping,
    create_checkpoint_manager,
    create_early_stopping,
)

__all__ = [
    "DEFAULT_BEST_BY",
    "BestTracker",
    "CheckpointManager",
    "EarlyStopping",
    "create_checkpoint_manager",
    "create_early_stopping",
]
