"""The shared training engine: one Trainer loop, checkpointing and early stopping for every model.

The LSTM training guide's names (``from src.training import create_trainer, GloVeLoader, ...``) are imported on
first use (PEP 562), so that importing the engine does not import the GloVe downloader: a stage
depends on the modules it uses and no others (tests/test_stage_deps.py reads ``_EXPORTS``).
"""

from __future__ import annotations

from src.core.lazy import lazy_exports

_EXPORTS = {  # name -> the module that defines it
    "Trainer": "src.training.trainer",
    "create_trainer": "src.training.factory",
    "CheckpointManager": "src.checkpoints.manager",
    "create_checkpoint_manager": "src.checkpoints.manager",
    "EarlyStopping": "src.training.early_stopping",
    "create_early_stopping": "src.training.early_stopping",
    "GloVeLoader": "src.training.glove_loader",
    "initialize_model_with_glove": "src.training.glove_loader",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
