"""Publishing a report into OUT: replace only the files a previous review provably wrote there.

The proof is the manifest a review leaves in OUT (``.review-files.json``: each file's name and SHA-256
as written). It counts only when it is not part of the tree (a manifest committed to git, as a pull
request could, proves nothing), and a file is replaced or removed only when it is not tracked by git
and still has the content the manifest records.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from src.core.atomic import write_json
from src.core.errors import PipelineError
from src.core.paths import is_plain_file_name

MANIFEST = ".review-files.json"  # the files the last review wrote in OUT: the only ones a review replaces
MAX_MANIFEST_BYTES = 1 << 20


def _sha256(path: Path) -> str | None:
    if not path.is_file() or path.is_symlink():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tracked_names(out: Path) -> set[str]:
    """The names directly in ``out`` that git tracks (none outside a git work tree)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", "."], cwd=out, capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return set()
    if listed.returncode != 0:
        return set()
    return {name.split("/", 1)[0] for name in listed.stdout.decode("utf-8", "replace").split("\0") if name}


def read_manifest(out: Path) -> set[str]:
    """The names in ``out`` that the previous review provably wrote (see the module docstring)."""
    path = out / MANIFEST
    tracked = tracked_names(out) if out.is_dir() else set()
    if MANIFEST in tracked or path.is_symlink() or not path.is_file():
        return set()
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            return set()
        entries = json.loads(data.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return set()
    if isinstance(entries, list):  # written before hashes were kept: names only
        entries = {name: None for name in entries if isinstance(name, str)}
    if not isinstance(entries, dict):
        return set()
    return {
        name
        for name, digest in entries.items()
        if is_plain_file_name(name)
        and name != MANIFEST
        and name not in tracked
        and (digest is None or _sha256(out / name) == digest)
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
    written = {name: _sha256(staging / name) for name in names}
    for name in sorted(previous - set(names)):  # the previous report's files this one does not have
        stale = out / name
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()
    for name in names:
        os.replace(staging / name, out / name)
    write_json(out / MANIFEST, written)
