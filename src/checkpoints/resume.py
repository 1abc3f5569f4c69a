"""What identifies a training run, so that a rerun resumes only from checkpoints of the same run.

A fingerprint holds the parameters that shape training (flattened to dotted names, kept as values
so a mismatch can say which changed), and sha256 digests of the input data files and of the code.
The Trainer stores it in every checkpoint and resumes only when it is equal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from src.data.checksum import sha256_of  # not src.data.download: the downloader is no dep of training

SOURCE_DIR = Path(__file__).resolve().parents[1]  # src/
REPO_DIR = SOURCE_DIR.parent


def source_files(stage_file: str | os.PathLike) -> list[Path]:
    """The stage script and every module under src/: broader than what one stage imports, but a
    change there can only cost a restart, whereas a missed one would resume with stale state."""
    return [Path(stage_file).resolve(), *sorted(SOURCE_DIR.rglob("*.py"))]


def _flatten(params: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        flat.update(_flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return flat


def _display_name(path: Path) -> str:
    path = Path(path)
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_DIR)) if resolved.is_relative_to(REPO_DIR) else str(path)


def run_fingerprint(
    params: dict, data_files: Iterable[str | os.PathLike] = (), code_files: Iterable[str | os.PathLike] = ()
) -> dict:
    """{params: {dotted name: value}, data: {file: sha256}, code: {file: sha256}} (plain types only,
    so it loads with ``torch.load(weights_only=True)``)."""
    return {
        "params": _flatten(params),
        "data": {str(path): sha256_of(path) for path in data_files},
        "code": {_display_name(path): sha256_of(path) for path in code_files},
    }


def describe_change(recorded: dict | None, current: dict | None) -> str | None:
    """Why a checkpoint with fingerprint ``recorded`` must not be resumed by ``current``; None if equal."""
    if recorded == current:
        return None
    if recorded is None or current is None:
        return "the checkpoint records no fingerprint" if recorded is None else "this run has no fingerprint"
    old, new = recorded.get("params", {}), current.get("params", {})
    missing = "(unset)"
    reasons = []
    changed_params = [
        f"{name} {old.get(name, missing)} -> {new.get(name, missing)}"
        for name in sorted(old.keys() | new.keys())
        if old.get(name, missing) != new.get(name, missing)
    ]
    if changed_params:
        reasons.append("params changed: " + ", ".join(changed_params))
    for section, label in (("data", "input data changed"), ("code", "code changed")):
        old, new = recorded.get(section, {}), current.get(section, {})
        changed_files = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
        if changed_files:
            reasons.append(f"{label}: " + ", ".join(changed_files))
    return "; ".join(reasons) or "the fingerprint changed"
