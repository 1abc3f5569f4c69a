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
    PARAMS_NAMES,
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
# what the command lines' errors call the settings params.yaml calls data.label_names, data.csv.*
COMMAND_LINE_NAMES = {
    **PARAMS_NAMES,
    "label_names": "--label-names",
    "label_advice": "give the names of the data's classes with --label-names",
    "text_column": "--text-column",
    "label_column": "--label-column",
    "split_column": "--split-column",
    "val_size": "--validation-split",
    "test_size": "--test-split",
}


def add_data_options(parser, label_names: bool = True) -> None:
    """The options that say how to read a data set: a command line that reads one adds them
    (``label_names``: whether it takes --label-names; scoring uses the model's own)."""
    data = parser.add_argument_group("data set")
    if label_names:
        data.add_argument(
            "--label-names",
            nargs="+",
            help="class names in label-id order (default: mapping.txt, else the labels found)",
        )
    data.add_argument("--text-column", default="text", help="CSV/TSV: the column of texts (default text)")
    data.add_argument("--label-column", default="label", help="CSV/TSV: the column of labels (default label)")
    data.add_argument(
        "--split-column", help="CSV/TSV: a column of train/val/test (default: none, a stratified random split)"
    )
    data.add_argument(
        "--validation-split",
        type=float,
        default=0.1,
        help="share of a CSV/TSV without a split column held out for validation (default 0.1)",
    )
    data.add_argument(
        "--test-split",
        type=float,
        default=0.2,
        help="share of a CSV/TSV without a split column held out for test (default 0.2)",
    )
    data.add_argument("--seed", type=int, default=42, help="seed of the random split (and of training)")


def csv_options(args) -> dict:
    """The ``csv_params`` of :func:`read_dataset` from the options :func:`add_data_options` added."""
    return {
        "text_column": args.text_column,
        "label_column": args.label_column,
        "split_column": args.split_column,
        "val_size": args.validation_split,
        "test_size": args.test_split,
    }


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


def infer_label_names(path: str | os.PathLike, csv_params: dict | None = None, names: dict = PARAMS_NAMES) -> list[str]:
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
        raise DataError(
            f"{path}:1: missing column {column} (header has: {shorten(header)}); set {names['label_column']}"
        )
    at = header.index(column)
    return _names_from_values({row[at] for _, row in rows if len(row) > at}, path)


def read_dataset(
    path: str | os.PathLike,
    label_names: list[str] | None = None,
    csv_params: dict | None = None,
    seed: int = 0,
    names: dict = PARAMS_NAMES,
) -> tuple[dict[str, Split], list[str]]:
    """(splits, label names): train and val (and test, from raw data). Raw data (TweetEval layout, CSV)
    is cleaned as ``preprocess`` cleans it; processed data is read as it is. Train must hold every class.
    ``names``: what errors call the settings (COMMAND_LINE_NAMES for a command line)."""
    path, kind = Path(path), layout(path)
    label_names = list(label_names) if label_names else infer_label_names(path, csv_params, names)
    if kind == "processed":
        # test: not for training
        splits = {s: read_split(path / f"{s}.jsonl", label_names, names) for s in ("train", "val")}
        train_file = path / "train.jsonl"
    else:
        splits = _read_raw(path, kind, label_names, csv_params, seed, names)
        train_file = path / "train_text.txt" if kind == "tweeteval" else path
    check_every_class_present(splits["train"], label_names, train_file, names)
    return splits, label_names


def _read_raw(path: Path, kind: str, label_names, csv_params, seed: int, names: dict) -> dict[str, Split]:
    raw = (
        read_tweeteval(path, label_names, names)
        if kind == "tweeteval"
        else read_csv_dataset(path, {**CSV_DEFAULTS, **(csv_params or {})}, label_names, seed, names)
    )
    return clean_splits(raw)[0]


def read_labelled_split(
    path: str | os.PathLike,
    split: str,
    label_names: list[str],
    csv_params: dict | None = None,
    seed: int = 0,
    names: dict = PARAMS_NAMES,
) -> tuple[Split, Path]:
    """One split of a data set in any layout, as the training command lines read it (the same cleaning,
    the same random split of a CSV for the same ``csv_params`` and ``seed``), with the file it came from."""
    path, kind = Path(path), layout(path)
    if kind == "processed":
        source = path / f"{split}.jsonl"
        if not source.is_file():
            raise DataError(f"{source}: not found; {path} has no {split} split")
        return read_split(source, label_names, names), source
    source = path / f"{split}_text.txt" if kind == "tweeteval" else path
    return _read_raw(path, kind, label_names, csv_params, seed, names)[split], source
