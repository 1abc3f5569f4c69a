"""Checkpoint files: read one safely (tensors and plain types only), and check that the files of a
model directory come from one training run (their model ids agree).

The engine writes these files (src.checkpoints.manager); the engine and scoring
(src.models.loading) both read them through here, so that scoring does not import the engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from src.core.errors import PipelineError

# In an export directory (BERT's model/): {"model_id": ...} of the best-model file it was made from.
MODEL_ID_FILE = "model_id.json"


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False) -> dict:
    """Read a checkpoint written by CheckpointManager (tensors and plain types only: weights_only).

    ``mmap=True`` maps the tensors instead of reading them: cheap when only the metadata is wanted."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise PipelineError(f"{path}: not a readable checkpoint ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(checkpoint, dict) or not {"epoch", "model_state_dict"} <= checkpoint.keys():
        raise PipelineError(f"{path}: not a readable checkpoint (a torch file without epoch and model_state_dict)")
    return checkpoint


def read_model_id(path: str | os.PathLike) -> str | None:
    """The ``model_id`` stamped into a best-model file (tensors are mapped, not read)."""
    return load_checkpoint_file(path, mmap=True).get("model_id")


def check_one_model(
    model_dir: str | os.PathLike, companion: Path, companion_id: Any, weights: Path, weights_id: Any, rerun: str
) -> None:
    """A PipelineError unless ``companion`` (model_config.json, a model/ export) and ``weights``
    (best_model.pt) carry the same model id, i.e. were published by the same finished training run."""
    if companion_id != weights_id:
        raise PipelineError(
            f"{model_dir}: incomplete model directory: {companion.relative_to(model_dir)} (model {companion_id}) "
            f"and {weights.relative_to(model_dir)} (model {weights_id}) come from different training runs, "
            f"as when a run is stopped while saving its model; run `{rerun}` to finish it"
        )
