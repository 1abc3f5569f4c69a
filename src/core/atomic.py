"""Atomic file writes: a temp file in the target's directory, fsync, then rename.

A process killed at any moment leaves either the old file or the complete new one, never a
truncated file that looks complete. A full disk is a PipelineError naming the file. A set of
outputs that belong together (a stage's files) is replaced as a whole or not at all
(:func:`replace_together`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from src.core.containment import check_inside_repository
from src.core.errors import PipelineError

_UMASK = os.umask(0)
os.umask(_UMASK)


# Below this much free space a failed write is taken for a full disk: numpy reports a short write
# and torch.save a position mismatch, neither with errno ENOSPC.
_NEARLY_FULL_BYTES = 1 << 20


def no_space_error(exc: BaseException, path: Path, kept: str) -> PipelineError | None:
    """A PipelineError naming ``path`` when ``exc`` comes from a full disk, else None.

    Call it before removing the partial file: that frees the space it looks for.
    """
    full = (
        (isinstance(exc, OSError) and exc.errno == errno.ENOSPC)
        or "No space left on device" in str(exc)
        or (isinstance(exc, (OSError, RuntimeError)) and shutil.disk_usage(path.parent).free < _NEARLY_FULL_BYTES)
    )
    if not full:
        return None
    return PipelineError(f"{path}: no space left on device while writing; {kept}. Free space and run again")


@contextlib.contextmanager
def full_disk_reported(path: Path, kept: str, cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """Re-raise a failure caused by a full disk as a PipelineError naming ``path`` and saying what
    was ``kept``. ``cleanup`` (removing the partial output) runs on any failure, after the check."""
    try:
        yield
    except BaseException as exc:
        disk_full = no_space_error(exc, path, kept)
        if cleanup is not None:
            cleanup()
        if disk_full is not None:
            raise disk_full from None
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside ``path``; on a clean exit it is fsynced and renamed onto ``path``."""
    path = Path(path)
    check_inside_repository([path], "write there")
    path.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    kept = "the previous file is intact" if path.exists() else "nothing was written"
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with full_disk_reported(path, kept, cleanup=lambda: Path(tmp_name).unlink(missing_ok=True)):
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp_name, path)


def fsync_tree(directory: str | os.PathLike) -> None:
    """fsync every file under ``directory`` and the directory itself (before renaming it into place)."""
    directory = Path(directory)
    for path in [*sorted(p for p in directory.rglob("*") if p.is_file()), directory]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False)
        handle.write("\n")


def save_numpy(path: str | os.PathLike, array) -> None:
    """``numpy.save`` atomically."""
    import numpy as np

    with atomic_open(path, "wb") as handle:
        np.save(handle, array)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically (checkpoints, model weights)."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def publish_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put a copy of ``source`` in place as ``target`` atomically, ``source`` staying where it is.

    A hard link (no data copied) when the filesystem has them, else a byte copy; either way through
    a temp name and a rename, so ``target`` is the old file or the complete new one.
    """
    source, target = Path(source), Path(target)
    check_inside_repository([target], "write there")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # no hard links here (or across devices): copy the bytes
        with open(source, "rb") as src, atomic_open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return
    os.replace(tmp, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replace_together(targets: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Replace a set of outputs (files or directories) as a whole, or leave the previous set whole.

    Yields one staging path per target, a hidden name beside it (the same file system); the body
    writes each new file or directory there. On a clean exit each target is swapped for its staged
    version by renames, the old ones kept aside until every new one is in place, then removed; a
    target the body did not stage is removed (it is not part of the new set). On any failure, the
    staged files go and every target is as it was; a full disk, or a target that cannot be
    replaced, is a PipelineError naming the set and saying so.
    """
    targets = [Path(t) for t in targets]
    check_inside_repository(targets, "replace it there")
    names = ", ".join(map(str, targets))
    tag = f"{os.getpid()}.{os.urandom(4).hex()}"  # unique per call
    # names ending in .tmp: an error about one names its directory (src.core.cli.path_error_message)
    staged = [t.parent / f".{t.name}.{tag}.new.tmp" for t in targets]
    aside = [t.parent / f".{t.name}.{tag}.old.tmp" for t in targets]
    had_previous = any(t.exists() or t.is_symlink() for t in targets)
    kept = "the previous outputs are intact" if had_previous else "nothing was written"

    created = []  # directories made for the targets, removed again when the set fails
    for target in targets:
        missing = [d for d in [target.parent, *target.parent.parents] if not d.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        created += reversed(missing)

    def discard_staged() -> None:
        for path in staged:
            _remove(path)
        for directory in reversed(created):  # deepest first; one that holds anything else stays
            with contextlib.suppress(OSError):
                directory.rmdir()

    try:
        yield staged
    except BaseException as exc:
        disk_full = no_space_error(exc, targets[0], kept) or (
            isinstance(exc, PipelineError) and "no space left on device" in str(exc)
        )
        discard_staged()
        if disk_full:
            raise PipelineError(
                f"{names}: no space left on device while writing the new set; {kept}. Free space and run again"
            ) from None
        raise
    put_aside: list[int] = []  # targets whose previous version was renamed aside
    put_in: list[int] = []  # targets whose new version was renamed in
    try:
        for i, target in enumerate(targets):
            if target.exists() or target.is_symlink():
                os.rename(target, aside[i])
                put_aside.append(i)
            if staged[i].exists():
                os.rename(staged[i], target)
                put_in.append(i)
    except BaseException as exc:
        try:  # roll back: the new versions out, the previous ones back
            for i in reversed(put_in):
                _remove(targets[i])
            for i in reversed(put_aside):
                os.rename(aside[i], targets[i])
            discard_staged()
        except OSError as undo_exc:
            raise PipelineError(
                f"{names}: could not replace them as a set ({exc}) nor put the previous ones back "
                f"({undo_exc}): the outputs are a mix of old and new; run the stage again"
            ) from None
        if isinstance(exc, OSError):
            raise PipelineError(f"{names}: could not be replaced ({exc.strerror}); {kept}") from None
        raise
    # the set is in place: what follows only makes it durable and tidies up, so it cannot undo the swap
    for directory in {t.parent for t in targets}:
        with contextlib.suppress(OSError):
            _fsync_directory(directory)
    for path in aside:
        with contextlib.suppress(OSError):
            _remove(path)
