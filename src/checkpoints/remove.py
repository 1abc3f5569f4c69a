"""Removing a training directory's resume state once it is no longer needed."""

from __future__ import annotations

from pathlib import Path


def remove_checkpoints(directory: Path) -> None:
    """Remove the ``.pt`` files and their registry from a training directory: the export in
    ``model/`` and ``training_history.json`` stay (a tuning trial needs no resume state)."""
    for checkpoint in [*directory.glob("*.pt"), directory / "checkpoint_registry.json"]:
        checkpoint.unlink(missing_ok=True)
