"""Per-tweet class probabilities as CSV: what the evaluate stages write and the review reads.

    predictions/<model>/probs_test.csv   predictions/<model>/probs_val.csv

A header naming the classes (``data.label_names``, in label-id order), then one row per tweet in the
split's order (data/processed/<split>.jsonl), each probability with 6 decimals. Rows sum to 1 up to
that rounding, which readers check (ROW_SUM_TOLERANCE). Kept free of torch so that reading them (src.review, an
ensemble) is cheap.
"""

from __future__ import annotations

import csv
import io
import math
import os
from array import array
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from src.core.atomic import atomic_open
from src.core.errors import PipelineError
from src.core.paths import check_link_inside_repository

DECIMALS = 6
MAX_FILE_BYTES = 64 * 1024 * 1024  # TweetEval's test set takes about 0.3 MB
# A row's sum may differ from 1 by the rounding to DECIMALS of each value (and float32 softmax error)
ROW_SUM_TOLERANCE = 1e-4
SPLITS = ("test", "val")
PROBABILITY_ROWS = "one row of comma-separated probabilities per tweet"


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


def _csv_rows(text: str, where: str):
    """The rows of ``text``; a malformed row (a field over csv's limit: an unclosed quote) is a PipelineError."""
    reader = csv.reader(io.StringIO(text))
    try:
        yield from reader
    except csv.Error as exc:
        raise PipelineError(f"{where}:{reader.line_num}: not valid CSV ({exc}); expected {PROBABILITY_ROWS}") from None


def parse_probabilities(text: str, label_names: Sequence[str], where: str) -> np.ndarray:
    """The (tweets, classes) array of a probabilities CSV, columns in ``label_names`` order.

    Every value must be a finite number in [0, 1] and every row must sum to 1 within ROW_SUM_TOLERANCE:
    rows of zeros or of ones are not probabilities. A text over MAX_FILE_BYTES, a header without every
    class, a short row or a value that is not a probability is a PipelineError naming ``where`` and the line."""
    if len(text) > MAX_FILE_BYTES:
        raise PipelineError(f"{where}: larger than {MAX_FILE_BYTES >> 20} MB; expected a probabilities file")
    rows = _csv_rows(text, where)
    header = next(rows, None)
    if header is None or len(header) != len(label_names) or sorted(header) != sorted(label_names):
        shown = (
            "none" if header is None else repr(header[:10])[:200] + (f" ({len(header):,} columns)" * (len(header) > 10))
        )
        raise PipelineError(f"{where}: header {shown}: expected the classes {list(label_names)}")
    order = [header.index(name) for name in label_names]
    values = array("d")  # 8 bytes a value: a list of float lists takes ten times that
    for line, row in enumerate(rows, start=2):
        try:
            numbers = [float(cell) for cell in row]
        except ValueError:
            numbers = []
        if len(numbers) != len(header) or not all(0.0 <= p <= 1.0 for p in numbers):  # NaN fails every comparison
            raise PipelineError(f"{where}:{line}: expected {len(header)} probabilities between 0 and 1")
        if abs(math.fsum(numbers) - 1.0) > ROW_SUM_TOLERANCE:
            raise PipelineError(
                f"{where}:{line}: probabilities sum to {math.fsum(numbers):.6g}; expected 1 "
                f"(within {ROW_SUM_TOLERANCE:g})"
            )
        values.extend(numbers[i] for i in order)
    return np.frombuffer(values, dtype=np.float64).reshape(-1, len(label_names)).copy()


def read_probabilities(path: str | Path, label_names: Sequence[str], n_rows: int) -> np.ndarray:
    """An evaluate stage's (tweets, classes) probabilities file, with one row per tweet of the split; a
    missing, oversized or malformed file, or a link out of the repository, is a PipelineError naming it."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found (run the model's evaluate stage first: dvc repro)")
    check_link_inside_repository(path, "probabilities")
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)  # at most the cap, whatever the file claims to be
    if len(data) > MAX_FILE_BYTES:
        raise PipelineError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MB; expected a probabilities file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    del data
    values = parse_probabilities(text, label_names, str(path))
    if len(values) != n_rows:
        raise PipelineError(f"{path}: {len(values)} rows; expected one per tweet of the split ({n_rows})")
    return values
