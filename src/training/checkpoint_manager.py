"""The LSTM training guide's ``src/training/checkpoint_manager.py``: its names, defined beside their kin.

Checkpoint files: src/checkpoints/manager.py; early stopping and the best tracker: src/training/early_stopping.py.
"""

from __future__ import annotations

from src.checkpoints.manager import DEFAULT_BEST_BY, CheckpointManager, create_checkpoint_manager
from src.training.early_stopping import BestTracker, EarlyStopping, create_early_stopping

__all__ = [
    "DEFAULT_BEST_BY",
    "BestTracker",
    "CheckpointManager",
    "EarlyStopping",
    "create_checkpoint_manager",
    "create_early_stopping",
]
