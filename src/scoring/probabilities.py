"""Per-tweet class probabilities as CSV: what the evaluate stages write and the review reads.

    predictions/<model>/probs_test.csv   predictions/<model>/probs_val.csv

A header naming the classes (``data.label_names``, in label-id order), then one row per tweet in the
split's order (data/processed/<split>.jsonl), each probability with 6 decimals. Rows sum to 1 up to
that rounding. Kept free of torch so that reading them (src.review, an ensemble) is cheap.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from src.core.atomic import atomic_open
from src.core.errors import PipelineError

DECIMALS = 6
MAX_FILE_BYTES = 64 * 1024 * 1024  # TweetEval's test set takes about 0.3 MB
SPLITS = ("test", "val")


def probabilities_file(split: str) -> str:
    """The file name, inside predictions/<model>/, of one split's probabilities."""
    return f"probs_{split}.csv"


def write_probabilities(path: str | os.PathLike, probabilities, label_names: Sequence[str]) -> None:
    """One header row of class names, one row of probabilities per tweet, atomically."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(label_names):
        raise ValueError(f"{path}: probabilities of shape {probabilities.shape} for {len(label_names)} classes")
    with atomic_open(path) as handle:
        handle.write(",".join(label_names) + "\n")
        handle.writelines(",".join(f"{p:.{DECIMALS}f}" for p in row) + "\n" for row in probabilities)


def parse_probabilities(text: str, label_names: Sequence[str], where: str) -> np.ndarray:
    """The (tweets, classes) array of a probabilities CSV, columns in ``label_names`` order.

    A header without every class, a short row or a value that is not a probability is a PipelineError
    naming ``where`` and the line."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or sorted(header) != sorted(label_names):
        raise PipelineError(f"{where}: header {header!r}: expected the classes {list(label_names)}")
    order = [header.index(name) for name in label_names]
    values = []
    for line, row in enumerate(rows, start=2):
        try:
            numbers = [float(cell) for cell in row]
        except ValueError:
            numbers = []
        if len(numbers) != len(header) or not all(0.0 <= p <= 1.0 for p in numbers):
            raise PipelineError(f"{where}:{line}: expected {len(header)} probabilities between 0 and 1")
        values.append([numbers[i] for i in order])
    return np.array(values, dtype=np.float64).reshape(len(values), len(label_names))


def read_probabilities(path: str | Path, label_names: Sequence[str], n_rows: int) -> np.ndarray:
    """An evaluate stage's (tweets, classes) probabilities file, with one row per tweet of the split; a
    missing, oversized or malformed file is a PipelineError naming it."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found (run the model's evaluate stage first: dvc repro)")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise PipelineError(
            f"{path}: {path.stat().st_size} bytes; expected a probabilities file under {MAX_FILE_BYTES} bytes"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    values = parse_probabilities(text, label_names, str(path))
    if len(values) != n_rows:
        raise PipelineError(f"{path}: {len(values)} rows; expected one per tweet of the split ({n_rows})")
    return values
