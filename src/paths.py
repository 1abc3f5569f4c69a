"""Names from params, mirrors and archives are validated before they become paths.

The rule (README, "When things go wrong"): nothing that params, a mirror or a downloaded file
holds can make a stage read or write outside its declared inputs and outputs. A name that would
(``../x``, ``/abs/x``, ``a/b``, a NUL byte) is an error naming where it came from.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from src.errors import PipelineError


def is_plain_file_name(name: Any) -> bool:
    """A name that can only mean a file directly inside the directory it is joined to."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and Path(name).name == name)


def plain_file_name(name: str, what: str) -> str:
    """``name`` when it is one file name (no directory part, not ``.``/``..``); else an error naming ``what``."""
    if not is_plain_file_name(name):
        raise PipelineError(f"{what} = {name!r}: expected a plain file name (no '/', '\\', '..' or NUL)")
    return name


def file_in(directory: str | os.PathLike, name: Any, what: str) -> Path:
    """``directory / name`` when ``name`` is a plain file name, else a PipelineError naming ``what``
    (e.g. a config key). For reading a model: a file there may be a symbolic link, as DVC's
    ``cache.type: symlink`` checks files out (DVC never stores links, so a pulled directory has none)."""
    return Path(directory) / plain_file_name(name, what)


def relative_path(path: str, what: str) -> Path:
    """``path`` when it is relative and has no ``..`` component, so it stays under the directory it is
    read from (params: the repository root); else an error naming ``what``."""
    pure = PurePosixPath(path) if isinstance(path, str) else None
    if (pure is None or not path or "\0" in path or "\\" in path or pure.is_absolute() or ".." in pure.parts
            or path.startswith("~")):
        raise PipelineError(f"{what} = {path!r}: expected a relative path inside the repository "
                            "(not absolute, no '..', no '~')")
    return Path(path)


def ensure_inside(path: str | os.PathLike, root: str | os.PathLike, what: str) -> Path:
    """``path`` when, symlinks resolved, it lies inside ``root``; else an error naming ``what``."""
    path, root = Path(path), Path(root)
    if ".." in path.parts or not path.resolve().is_relative_to(root.resolve()):
        raise PipelineError(f"{what}: {path} is outside {root}; refusing to read or write there")
    return path
