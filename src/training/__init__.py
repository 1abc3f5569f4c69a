"""The shared training engine: one Trainer loop, checkpointing and early stopping for every model."""
from src.training.checkpoint_manager import (
    CheckpointManager,
    EarlyStopping,
    create_checkpoint_manager,
    create_early_stopping,
)
from src.training.glove_loader import GloVeLoader, initialize_model_with_glove
from src.training.trainer import Trainer, create_trainer

__all__ = [
    "Trainer",
    "create_trainer",
    "CheckpointManager",
    "create_checkpoint_manager",
    "EarlyStopping",
    "create_early_stopping",
    "GloVeLoader",
    "initialize_model_with_glove",
]
