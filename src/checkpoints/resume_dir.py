"""Where a training stage keeps its resume state: outside its DVC outputs, keyed by the run's fingerprint.

DVC deletes a stage's outputs before it runs the stage, unless they are ``persist``, and a stage with a
persisted output gets no run-cache entry (DVC's ``stage/cache.py: _can_hash``). So the training stages
train in ``.resume/<stage>/<key>/`` instead (ignored by git and DVC), where ``key`` is a digest of the
run's fingerprint (src/checkpoints/resume.py): a killed ``dvc repro`` finds its checkpoints there, and an
experiment with other params has a directory of its own, so going back to a killed run still resumes it.
When the run has finished, :func:`publish` puts the model's files (not the checkpoints) into the
declared output as a whole and removes the directory. ``rm -rf .resume`` drops every unfinished run.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

RESUME_ROOT = Path(".resume")
# resume state only: what a rerun continues from, never what evaluate or predict read
RESUME_STATE = ("checkpoint_epoch_*.pt", "checkpoint_registry.json", "*.in_progress.pt", ".*.tmp")


def run_key(fingerprint: dict) -> str:
    """16 hex digits of sha256 over the fingerprint as canonical JSON: equal runs, equal keys."""
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def resume_dir(stage: str, fingerprint: dict, root: str | os.PathLike = RESUME_ROOT) -> Path:
    """The directory a run of ``stage`` with ``fingerprint`` trains in. Not made here: the run makes it when
    it first writes there, so a run refused before any work (bad params or data, another rank) leaves none."""
    return Path(root) / stage / run_key(fingerprint)


def probe_outputs(*directories: str | os.PathLike) -> None:
    """Check, before any training and creating nothing, that each directory a finished run writes into can
    be made and written: a file in the way or a directory that cannot be written fails now (an OSError
    naming it), not after the run, which trains in the resume directory and reaches its outputs at the end."""
    for directory in map(Path, directories):
        existing = next(p for p in [directory, *directory.parents] if p.exists() or p == Path("."))
        if not existing.is_dir():  # a file where the directory or one above it belongs
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory))
        try:
            handle, name = tempfile.mkstemp(dir=existing, prefix=".probe.", suffix=".tmp")
        except OSError as exc:  # named by the directory the run will write, not the one probed
            raise type(exc)(exc.errno, exc.strerror, str(directory)) from None
        os.close(handle)
        os.unlink(name)


def is_publisher() -> bool:
    """Rank 0 under torchrun (RANK survives the process group's end), or the one process otherwise."""
    return os.environ.get("RANK", "0") == "0"


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)  # same file system: no second copy of a large model
    except OSError:
        shutil.copy2(source, target)


def publish(work: str | os.PathLike, output: str | os.PathLike, leave_out: tuple[str, ...] = RESUME_STATE) -> Path:
    """Replace the directory ``output`` with the files of ``work`` but ``leave_out`` (glob patterns), then
    remove ``work``. The new tree is built beside ``output`` and renamed into place, so ``output`` holds
    either the previous model or the whole new one; a kill before the rename leaves ``work`` intact."""
    work, output = Path(work), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging, previous = output.with_name(f".{output.name}.publishing"), output.with_name(f".{output.name}.previous")
    for leftover in (staging, previous):  # of a publish that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(work, staging, ignore=shutil.ignore_patterns(*leave_out), copy_function=_link_or_copy)
    if output.is_symlink() or output.is_file():
        output.unlink()
    elif output.exists():
        os.replace(output, previous)
    os.replace(staging, output)
    shutil.rmtree(previous, ignore_errors=True)
    discard(work)
    return output


def discard(work: str | os.PathLike) -> None:
    """Remove ``work`` and the stage directory above it once empty (and ``.resume`` once empty)."""
    work = Path(work)
    shutil.rmtree(work, ignore_errors=True)
    for parent in (work.parent, work.parent.parent):
        try:
            parent.rmdir()
        except OSError:  # not empty: another run's state, kept for when its params come back
            break
