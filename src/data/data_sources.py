"""A labelled data set for the training command lines, from any of the three layouts the project reads.

- a directory in TweetEval's layout (``{split}_text.txt``, ``{split}_labels.txt``, optional ``mapping.txt``),
- the processed directory that the ``preprocess`` stage writes (``train.jsonl``, ``val.jsonl``, ``test.jsonl``),
- one CSV or TSV file (text and label columns; rows split by a split column or a stratified random split).

Reading, validation and normalisation are ``src.data.preprocess``'s (the same errors, naming file and line).
Label names come from ``mapping.txt`` when there is one, else from the labels themselves: label ids
``0..K-1`` name themselves (``"0"``, ``"1"``, ...), other values are names, in sorted order.
"""

from __future__ import annotations

import os
from pathlib import Path

from src.core.errors import DataError
from src.data.preprocess import (
    _LABEL_ID,
    SPLITS,
    Split,
    check_every_class_present,
    clean_splits,
    csv_rows,
    read_csv_dataset,
    read_lines,
    read_split,
    read_tweeteval,
    shorten,
)

CSV_DEFAULTS = {"text_column": "text", "label_column": "label", "split_column": None, "val_size": 0.1, "test_size": 0.2}


def layout(path: str | os.PathLike) -> str:
    """``processed``, ``tweeteval`` or ``csv``; anything else is an error saying what was expected."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in {".csv", ".tsv", ".tab"}:
        return "csv"
    if path.is_dir():
        if (path / "train.jsonl").is_file():
            return "processed"
        if (path / "train_text.txt").is_file():
            return "tweeteval"
    what = "not found" if not path.exists() else "not a data set"
    raise DataError(
        f"{path}: {what}; expected a directory with train_text.txt/train_labels.txt (TweetEval layout), "
        "a processed directory with train.jsonl/val.jsonl (dvc repro preprocess), or a .csv/.tsv file"
    )


def _names_from_values(values: set, where: Path) -> list[str]:
    if not values:
        raise DataError(f"{where}: no labels")
    if all(isinstance(v, int) or (isinstance(v, str) and _LABEL_ID.fullmatch(v)) for v in values):
        return [str(i) for i in range(max(int(v) for v in values) + 1)]
    return sorted(str(v) for v in values)


def infer_label_names(path: str | os.PathLike, csv_params: dict | None = None) -> list[str]:
    """The label names of a data set (see the module docstring)."""
    path, kind = Path(path), layout(path)
    if kind == "tweeteval":
        mapping = path / "mapping.txt"
        if mapping.is_file():
            return [line.split("\t", 1)[-1] for line in read_lines(mapping)]
        return _names_from_values({v for s in SPLITS for v in read_lines(path / f"{s}_labels.txt")}, path)
    if kind == "processed":
        return _names_from_values(
            {v for s in SPLITS if (path / f"{s}.jsonl").is_file() for v in read_split(path / f"{s}.jsonl").labels}, path
        )
    column = {**CSV_DEFAULTS, **(csv_params or {})}["label_column"]
    rows = csv_rows(read_lines(path), path, "\t" if path.suffix.lower() in {".tsv", ".tab"} else ",")
    header = next(rows, (1, []))[1]
    if column not in header:
        raise DataError(f"{path}:1: missing column {column} (header has: {shorten(header)})")
    at = header.index(column)
    return _names_from_values({row[at] for _, row in rows if len(row) > at}, path)


def read_dataset(
    path: str | os.PathLike, label_names: list[str] | None = None, csv_params: dict | None = None, seed: int = 0
) -> tuple[dict[str, Split], list[str]]:
    """(splits, label names): train and val (and test, from raw data). Raw data (TweetEval layout, CSV)
    is cleaned as ``preprocess``
    cleans it; processed data is read as it is. Train must hold every class."""
    path, kind = Path(path), layout(path)
    label_names = list(label_names) if label_names else infer_label_names(path, csv_params)
    if kind == "processed":
        splits = {s: read_split(path / f"{s}.jsonl", label_names) for s in ("train", "val")}  # test: not for training
        train_file = path / "train.jsonl"
    else:
        raw = (
            read_tweeteval(path, label_names)
            if kind == "tweeteval"
            else read_csv_dataset(path, {**CSV_DEFAULTS, **(csv_params or {})}, label_names, seed)
        )
        splits, _ = clean_splits(raw)
        train_file = path / "train_text.txt" if kind == "tweeteval" else path
    check_every_class_present(splits["train"], label_names, train_file)
    return splits, label_names
