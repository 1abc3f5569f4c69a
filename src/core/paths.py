"""Names from params, mirrors and archives are validated before they become paths.

The rule (README, "When things go wrong"): nothing that params, a mirror or a downloaded file
holds can make a stage read or write outside its declared inputs and outputs. A name that would
(``../x``, ``/abs/x``, ``a/b``, a NUL byte) is an error naming where it came from.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from src.core.errors import PipelineError


def is_plain_file_name(name: Any) -> bool:
    """A name that can only mean a file directly inside the directory it is joined to."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and Path(name).name == name
    )


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
    if (
        pure is None
        or not path
        or "\0" in path
        or "\\" in path
        or pure.is_absolute()
        or ".." in pure.parts
        or path.startswith("~")
    ):
        raise PipelineError(
            f"{what} = {path!r}: expected a relative path inside the repository (not absolute, no '..', no '~')"
        )
    return Path(path)


def ensure_inside(path: str | os.PathLike, root: str | os.PathLike, what: str) -> Path:
    """``path`` when, symlinks resolved, it lies inside ``root``; else an error naming ``what``."""
    path, root = Path(path), Path(root)
    # no '..' anywhere: a root the user names with '..' (SENTIMENT_MIRROR=../shared/mirror) is resolved
    # by the caller before paths are joined to it
    if ".." in path.parts or not path.resolve().is_relative_to(root.resolve()):
        raise PipelineError(f"{what}: {path} is outside {root}; refusing to read or write there")
    return path


def check_link_inside_repository(path: str | os.PathLike, what: str) -> None:
    """``path``, links resolved, must lie inside the repository (the working directory), as a model
    directory's links must (check_model_dir); a path named outside the repository may link only inside
    its own directory. DVC's ``cache.type: symlink`` links into .dvc/cache, inside. Else a PipelineError
    naming ``path`` and ``what`` it was to be read as."""
    path = Path(path)
    absolute = Path(os.path.abspath(path))
    cwd = Path.cwd()
    root = cwd.resolve() if absolute.is_relative_to(cwd) else absolute.parent.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise PipelineError(
            f"{path}: a symbolic link to {resolved}, outside {root}; refusing to read {what} from there"
        )


# Weights may be large; every other file of a model directory (configs, tokenizer, vocabulary,
# history) is parsed whole into memory, so its size is capped before it is read.
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".npy", ".ckpt"}
MAX_MODEL_FILE_BYTES = 64 << 20
MAX_MODEL_DIR_ENTRIES = 10_000


def check_model_dir(directory: str | os.PathLike) -> None:
    """A pulled model directory may point nowhere else and hold no oversized text file.

    Every symbolic link in it (the directory itself included) must resolve inside the repository
    (the working directory; DVC's ``cache.type: symlink`` links into .dvc/cache there), or inside the
    directory itself when it was named outside the repository. Files other than weights are at
    most MAX_MODEL_FILE_BYTES. Anything else is a PipelineError naming the path."""
    directory = Path(directory)
    absolute = Path(os.path.abspath(directory))
    cwd = Path.cwd()
    root = cwd.resolve() if absolute.is_relative_to(cwd) else absolute.resolve()
    if not directory.is_dir():
        return  # the loader reports a missing directory in its own words

    def check(path: Path) -> None:
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise PipelineError(
                f"{path}: a symbolic link to {path.resolve()}, outside {root}; refusing to read a model from there"
            )

    if absolute.is_relative_to(cwd):  # each directory on the way down: models/tune/config_7 -> elsewhere
        for depth in range(len(cwd.parts) + 1, len(absolute.parts) + 1):
            check(Path(*absolute.parts[:depth]))
    entries = 0
    for top, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            entries += 1
            if entries > MAX_MODEL_DIR_ENTRIES:
                raise PipelineError(
                    f"{directory}: more than {MAX_MODEL_DIR_ENTRIES:,} files; expected a model directory"
                )
            path = Path(top) / name
            check(path)
            if name in files and path.suffix not in WEIGHT_SUFFIXES and path.stat().st_size > MAX_MODEL_FILE_BYTES:
                raise PipelineError(
                    f"{path}: {path.stat().st_size / 2**20:.0f} MB; expected at most "
                    f"{MAX_MODEL_FILE_BYTES >> 20} MB for a model's configuration, tokenizer or "
                    "vocabulary file (damaged or replaced?)"
                )


def extract_inside(tar: tarfile.TarFile, directory: Path, what: str) -> None:
    """Extract ``tar`` into ``directory``; a member that would land outside it is an error naming ``what``.

    tarfile's ``data`` filter does it where Python has it (3.12; 3.11.4 and later 3.11 releases);
    on older releases (Debian 12's 3.11.2) the same rule by hand: plain files and directories only,
    no absolute path, no ``..``."""
    if hasattr(tarfile, "data_filter"):
        try:
            tar.extractall(directory, filter="data")
        except tarfile.FilterError as exc:
            raise PipelineError(f"{what}: refused, {exc}") from None
        return
    root = directory.resolve()
    for member in tar.getmembers():
        inside = (root / member.name).resolve().is_relative_to(root)  # an absolute name or a `..` is not
        if not (member.isfile() or member.isdir()) or not inside:
            raise PipelineError(f"{what}: refused, member {member.name!r} is not a plain file or directory inside it")
    tar.extractall(directory)
