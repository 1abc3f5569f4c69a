"""The shared training engine: one Trainer loop, checkpointing and early stopping for every model.

Seed 003's names (``from src.training import create_trainer, GloVeLoader, ...``) are imported on
first use (PEP 562), so that importing the engine does not import the GloVe downloader: a stage
depends on the modules it uses and no others (tests/test_stage_deps.py reads ``_EXPORTS``).
"""
from __future__ import annotations

import importlib

_EXPORTS = {  # name -> the module that defines it
    "Trainer": "src.training.trainer",
    "create_trainer": "src.training.trainer",
    "CheckpointManager": "src.training.checkpoint_manager",
    "create_checkpoint_manager": "src.training.checkpoint_manager",
    "EarlyStopping": "src.training.checkpoint_manager",
    "create_early_stopping": "src.training.checkpoint_manager",
    "GloVeLoader": "src.training.glove_loader",
    "initialize_model_with_glove": "src.training.glove_loader",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
