"""GloVe variants, their archive URLs and members, extraction and reading of the vector text files."""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np

from src.core.atomic import atomic_open
from src.core.errors import DataError, PipelineError
from src.core.paths import ensure_inside, plain_file_name

log = logging.getLogger(__name__)

GLOVE_BASE_URL = "https://nlp.stanford.edu/data/"

# corpus -> (archive name, dimensions the archive holds)
GLOVE_VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "6B": ("glove.6B.zip", ("50d", "100d", "200d", "300d")),
    "42B": ("glove.42B.300d.zip", ("300d",)),
    "840B": ("glove.840B.300d.zip", ("300d",)),
    "twitter.27B": ("glove.twitter.27B.zip", ("25d", "50d", "100d", "200d")),
}


def check_variant(corpus: str, dimension: str) -> None:
    """A clear error, before any download, for a corpus/dimension pair GloVe never published."""
    if corpus not in GLOVE_VARIANTS:
        raise PipelineError(f"glove.corpus = {corpus!r}: expected one of {', '.join(GLOVE_VARIANTS)}")
    dims = GLOVE_VARIANTS[corpus][1]
    if dimension not in dims:
        raise PipelineError(f"glove.dimension = {dimension!r}: GloVe {corpus} comes in {', '.join(dims)} only")


def archive_url(corpus: str, base_url: str = GLOVE_BASE_URL) -> str:
    return base_url + GLOVE_VARIANTS[corpus][0]


def member_name(corpus: str, dimension: str) -> str:
    """The text file inside the archive, e.g. ``glove.twitter.27B.25d.txt``."""
    check_variant(corpus, dimension)
    return f"glove.{corpus}.{dimension}.txt"


def dimension_size(dimension: str) -> int:
    return int(dimension.rstrip("d"))


def extract_member(
    archive: str | os.PathLike, member: str, dest: str | os.PathLike, within: str | os.PathLike | None = None
) -> Path:
    """Extract one member of a zip archive to ``dest`` atomically; a missing member names what is there.

    Only the one member asked for is read, and only ``dest`` is written (inside ``within`` when given):
    the names the archive holds never become paths.
    """
    archive, dest = Path(archive), Path(dest)
    plain_file_name(member, f"{archive}: member")
    ensure_inside(dest, within if within is not None else dest.parent, "GloVe extraction")
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            if member not in names:
                raise PipelineError(
                    f"{archive}: the archive has no member {member} (it holds: {', '.join(names) or 'nothing'}); "
                    "choose a glove.dimension that the archive contains"
                )
            with zf.open(member) as src, atomic_open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DataError(f"{archive}: not a valid zip archive (truncated or corrupt download? {exc})") from None
    except (RuntimeError, NotImplementedError) as exc:  # an encrypted member, an unknown compression method
        raise DataError(f"{archive}: cannot extract {member}: {exc}") from None
    return dest


def read_vectors(path: str | os.PathLike, words: set[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Read a GloVe text file: ``word v1 v2 ...`` per line. Returns (word -> float32 vector, dim).

    With ``words``, only those words are kept, so aligning a vocabulary never holds the whole file.
    A line with the wrong number of values is an error naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: GloVe file not found")
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with open(path, encoding="utf-8", errors="strict") as handle:
        for line_no, line in enumerate(handle, 1):
            # Split from the right: a few GloVe "words" contain spaces (840B), never the values.
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise DataError(f"{path}:{line_no}: expected 'word v1 v2 ...', got {line[:60]!r}")
            if len(parts) - 1 != dim:
                word = " ".join(parts[: len(parts) - dim])
                values = parts[len(parts) - dim :]
                if len(parts) <= dim:
                    raise DataError(f"{path}:{line_no}: expected {dim} values, got {len(parts) - 1}")
            else:
                word, values = parts[0], parts[1:]
            if words is not None and word not in words:
                continue
            try:
                vectors[word] = np.asarray(values, dtype=np.float32)
            except ValueError:
                raise DataError(f"{path}:{line_no}: non-numeric vector value for {word!r}") from None
    if dim is None:
        raise DataError(f"{path}: empty GloVe file")
    return vectors, dim
