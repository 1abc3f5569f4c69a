"""Publishing a report into OUT: replace only the files a previous review wrote there (its manifest)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from src.core.atomic import write_json
from src.core.errors import PipelineError

MANIFEST = ".review-files.json"  # the files the last review wrote in OUT: the only ones a review replaces


def read_manifest(out: Path) -> set[str]:
    """The file names the previous review wrote in ``out``: plain names directly inside it only."""
    try:
        names = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(names, list):
        return set()
    return {
        name
        for name in names
        if isinstance(name, str) and name not in {"", ".", "..", MANIFEST} and "/" not in name and "\\" not in name
    }


def publish(staging: Path, out: Path) -> None:
    """Move the new report's files from ``staging`` into ``out``, replacing only what a review wrote there."""
    previous = read_manifest(out)
    names = sorted(path.name for path in staging.iterdir())
    for name in names:
        target = out / name
        if (target.exists() or target.is_symlink()) and name not in previous:
            raise PipelineError(
                f"{target}: exists and was not written by src.review (not in {out / MANIFEST}); "
                "move it or choose another --out"
            )
    for name in sorted(previous - set(names)):  # the previous report's files this one does not have
        stale = out / name
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()
    for name in names:
        os.replace(staging / name, out / name)
    write_json(out / MANIFEST, names)
