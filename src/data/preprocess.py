"""Read raw splits (TweetEval layout or one CSV/TSV), validate, normalise, de-duplicate, subset."""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from src.core.atomic import atomic_open
from src.core.errors import DataError

# the normalisation has a module of its own (standard library only: the Hub export ships it); its names are
# imported from here too
from src.data.normalization import MAX_TEXT_CHARS, normalize_tweet, symbols_as_words  # noqa: F401

SPLITS = ("train", "val", "test")
# What error messages call the settings that shape reading: params.yaml's keys, and the advice for a
# processed split made with other label names. A command line passes its own (src.data.data_sources).
PARAMS_NAMES = {
    "label_names": "data.label_names",
    "label_advice": "the processed data was made with other label names: run `dvc repro preprocess`",
    "text_column": "data.csv.text_column",
    "label_column": "data.csv.label_column",
    "split_column": "data.csv.split_column",
    "val_size": "data.csv.val_size",
    "test_size": "data.csv.test_size",
}


@dataclass
class Split:
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


# A line longer than this is not a text (a tweet is at most 280 characters, and src.predict reads the first
# 64K characters of one); reading stops there, so a stream without newlines cannot fill the memory.
MAX_LINE_BYTES = 64 << 20


def iter_lines(stream: BinaryIO, where: str, empty: str = "file is empty") -> Iterator[str]:
    """UTF-8 lines read one at a time from a binary stream: a leading byte-order mark dropped, split on
    ``\\n`` only (tweets may hold U+2028 or \\r; a trailing \\r is dropped). ``where`` names the source
    (a path, ``<stdin>``) in errors, with the line number: a line that is not UTF-8, a line longer than
    MAX_LINE_BYTES (cut while reading), and input that is only whitespace (``empty`` says so).

    Memory: one line, and the whitespace-only lines before the first text (held to tell empty input,
    as runs of equal lines: a stream of newlines takes none)."""
    held: list[list] = []  # [line, repeats]: runs of whitespace-only lines before the first line with text
    seen_text = False
    line_no = 0
    while True:
        try:
            raw = stream.readline(MAX_LINE_BYTES + 1)
        except (OSError, ValueError) as exc:
            raise DataError(f"{where}: cannot be read ({exc})") from None
        if not raw:
            break
        line_no += 1
        if line_no == 1:
            raw = raw.removeprefix(codecs.BOM_UTF8)  # utf-8-sig: spreadsheet exports start with a byte-order mark
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        elif len(raw) > MAX_LINE_BYTES:
            raise DataError(
                f"{where}:{line_no}: longer than {MAX_LINE_BYTES >> 20} MB without a newline "
                "(the limit of a line); expected one text per line"
            )
        if not seen_text:
            if not raw.strip():
                if held and held[-1][0] == raw:
                    held[-1][1] += 1
                else:
                    held.append([raw, 1])
                continue
            seen_text = True
            for blank, repeats in held:
                text = blank.decode("ascii").rstrip("\r")  # bytes.strip() removes ASCII whitespace only
                for _ in range(repeats):
                    yield text
            held = []
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}:{line_no}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        yield text
    if not seen_text:
        raise DataError(f"{where}: {empty}")


def split_lines(data: bytes, where: str) -> list[str]:
    """The lines of ``data`` by the rules of :func:`iter_lines`."""
    return list(iter_lines(io.BytesIO(data), where))


def read_lines(path: Path) -> list[str]:
    """The lines of ``path`` by :func:`iter_lines`; a missing or empty file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as handle:
        return list(iter_lines(handle, str(path)))


_LABEL_ID = re.compile(r"0|[1-9][0-9]*")  # ASCII digits only: str.isdigit() also takes '²' and '１'


def parse_label(value: str, label_names: list[str], where: str) -> int:
    """The one rule for a label in any file (TweetEval labels, CSV, mapping.txt ids): exactly a label id
    0..K-1 in ASCII digits (no sign, no leading zero, no spaces) or exactly a name from ``label_names``.
    Anything else is an error naming ``where`` (``file:line``)."""
    if value in label_names:
        return label_names.index(value)
    if _LABEL_ID.fullmatch(value) and int(value) < len(label_names):
        return int(value)
    raise DataError(
        f"{where}: label {value!r} is not one of 0..{len(label_names) - 1} ({', '.join(label_names)}); "
        "a label is exactly an id in ASCII digits or a name: no spaces, signs or leading zeros"
    )


def check_label_id(label, label_names: list[str], where: str, names: dict = PARAMS_NAMES) -> int:
    """A label id read from a processed split (a JSON integer): it must index ``label_names``."""
    if isinstance(label, bool) or not isinstance(label, int):
        raise DataError(f"{where}: label {label!r} is not an integer label id")
    if not 0 <= label < len(label_names):
        raise DataError(
            f"{where}: label {label} is outside {names['label_names']} ({len(label_names)} names: "
            f"{', '.join(label_names)}); {names['label_advice']}"
        )
    return label


def read_mapping(path: Path, label_names: list[str], names: dict = PARAMS_NAMES) -> None:
    """TweetEval's mapping.txt (``id<TAB>name``) must agree with ``data.label_names``."""
    found = {}
    for line_no, line in enumerate(read_lines(path), 1):
        parts = line.split("\t")
        if len(parts) != 2 or not _LABEL_ID.fullmatch(parts[0]) or not parts[1] or parts[1] != parts[1].strip():
            raise DataError(
                f"{path}:{line_no}: expected 'id<TAB>name' (an id in ASCII digits, a name without "
                f"surrounding spaces), got {line!r}"
            )
        if int(parts[0]) in found:
            raise DataError(f"{path}:{line_no}: label id {parts[0]} appears twice")
        found[int(parts[0])] = parts[1]
    expected = dict(enumerate(label_names))
    params = "params " if names is PARAMS_NAMES else ""
    if found != expected:
        raise DataError(f"{path}: labels {found} differ from {params}{names['label_names']} {expected}")


def read_tweeteval_split(raw_dir: str | os.PathLike, split: str, label_names: list[str]) -> Split:
    """``{split}_text.txt`` and ``{split}_labels.txt``: one tweet and one label id per line."""
    raw_dir = Path(raw_dir)
    text_path, label_path = raw_dir / f"{split}_text.txt", raw_dir / f"{split}_labels.txt"
    texts, label_lines = read_lines(text_path), read_lines(label_path)
    if len(texts) != len(label_lines):
        raise DataError(
            f"{text_path} has {len(texts)} lines but {label_path} has {len(label_lines)}: expected one label per tweet"
        )
    labels = [parse_label(v, label_names, f"{label_path}:{i}") for i, v in enumerate(label_lines, 1)]
    return Split(texts, labels)


def read_tweeteval(raw_dir: str | os.PathLike, label_names: list[str], names: dict = PARAMS_NAMES) -> dict[str, Split]:
    raw_dir = Path(raw_dir)
    if (raw_dir / "mapping.txt").exists():
        read_mapping(raw_dir / "mapping.txt", label_names, names)
    return {split: read_tweeteval_split(raw_dir, split, label_names) for split in SPLITS}


# A tweet is at most 280 characters: a field longer than this is a damaged file (often a quote that is
# never closed, which runs to the end of the file). Python's csv module has the same default limit;
# set here so that the error can name it.
MAX_CSV_FIELD_CHARS = 128 * 1024
csv.field_size_limit(MAX_CSV_FIELD_CHARS)


def shorten(names: list[str], shown: int = 20) -> str:
    """The first ``shown`` of ``names``, comma-separated, and how many there are in all when more."""
    text = ", ".join(names[:shown])
    return text[:2000] + (f", ... ({len(names):,} in all)" if len(names) > shown else "")


def csv_rows(lines: list[str], path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(the line a row starts on, its fields) of a CSV (``,``) or TSV (tab) file's lines. A malformed
    row or a field over MAX_CSV_FIELD_CHARS is a DataError naming the file and line."""
    kind = "TSV" if delimiter == "\t" else "CSV"
    reader = csv.reader(lines, delimiter=delimiter)
    row_start = 1
    try:
        for fields in reader:
            yield row_start, fields
            row_start = reader.line_num + 1  # a quoted field may span lines: name the line the row starts on
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise DataError(
                f"{path}:{row_start}: a field longer than {MAX_CSV_FIELD_CHARS:,} characters, the limit of "
                f"a {kind} field (a quote that is never closed?)"
            ) from None
        raise DataError(f"{path}:{row_start}: not valid {kind}: {exc}") from None


def read_csv_dataset(
    path: str | os.PathLike, csv_params: dict, label_names: list[str], seed: int, names: dict = PARAMS_NAMES
) -> dict[str, Split]:
    """One CSV (``,``) or TSV (``.tsv``/``.tab``: tab) file with text and label columns.

    Rows go to splits by ``csv.split_column`` (values train/val/test) when set, otherwise by a
    stratified random split of ``csv.val_size`` and ``csv.test_size``. ``names``: what errors call
    those settings (params keys, or a command line's flags).
    """
    path = Path(path)
    lines = read_lines(path)  # validates existence, emptiness and encoding with line numbers
    delimiter = "\t" if path.suffix.lower() in {".tsv", ".tab"} else ","
    rows = csv_rows(lines, path, delimiter)
    columns = next(rows, (1, []))[1]
    duplicated = sorted(name for name, count in Counter(columns).items() if count > 1)  # linear in the columns
    if duplicated:
        raise DataError(f"{path}:1: column(s) {shorten(duplicated)} appear more than once in the header")
    wanted = [csv_params["text_column"], csv_params["label_column"]]
    if csv_params["split_column"]:
        wanted.append(csv_params["split_column"])
    at = {name: i for i, name in enumerate(columns)}
    missing = [c for c in wanted if c not in at]
    if missing:
        raise DataError(
            f"{path}:1: missing column(s) {', '.join(missing)} (header has: {shorten(columns)}); "
            f"set {names['text_column']} / {names['label_column']} / {names['split_column']}"
        )
    text_at, label_at = at[csv_params["text_column"]], at[csv_params["label_column"]]
    split_at = at[csv_params["split_column"]] if csv_params["split_column"] else None
    splits = {s: Split() for s in SPLITS}
    unsplit = Split()
    for line, fields in rows:
        where = f"{path}:{line}"
        if not fields:
            continue  # a blank line
        if len(fields) != len(columns):
            raise DataError(
                f"{where}: row has {len(fields)} fields but the header has {len(columns)} "
                "(quote a field that holds the delimiter)"
            )
        label_id = parse_label(fields[label_at], label_names, where)
        if split_at is not None:
            if fields[split_at] not in splits:
                raise DataError(f"{where}: split {fields[split_at]!r} is not one of {', '.join(SPLITS)}")
            target = splits[fields[split_at]]
        else:
            target = unsplit
        target.texts.append(fields[text_at])
        target.labels.append(label_id)
    if not csv_params["split_column"]:
        splits = _random_split(unsplit, csv_params["val_size"], csv_params["test_size"], seed, path, names)
    for split, rows in splits.items():
        if not rows:
            raise DataError(f"{path}: no rows for the {split} split")
    return splits


def _random_split(
    rows: Split, val_size: float, test_size: float, seed: int, path: Path, names: dict = PARAMS_NAMES
) -> dict[str, Split]:
    from sklearn.model_selection import train_test_split

    if val_size + test_size >= 1:
        raise DataError(f"{names['val_size']} + {names['test_size']} must be < 1")
    idx = list(range(len(rows)))
    try:
        rest, test = train_test_split(idx, test_size=test_size, stratify=rows.labels, random_state=seed)
        rest_labels = [rows.labels[i] for i in rest]
        train, val = train_test_split(
            rest, test_size=val_size / (1 - test_size), stratify=rest_labels, random_state=seed
        )
    except ValueError as exc:
        raise DataError(f"{path}: cannot make a stratified split: {exc}") from None
    pick = lambda ids: Split([rows.texts[i] for i in ids], [rows.labels[i] for i in ids])  # noqa: E731
    return {"train": pick(sorted(train)), "val": pick(sorted(val)), "test": pick(sorted(test))}


def clean_splits(splits: dict[str, Split]) -> tuple[dict[str, Split], dict[str, int]]:
    """Normalise every split; drop from train only: empty tweets, exact duplicates, val/test leaks.

    Val and test are kept whole, so their row counts stay comparable with published results.
    Returns the cleaned splits and the number of train rows dropped per reason.
    """
    normalized = {s: Split([normalize_tweet(t) for t in sp.texts], list(sp.labels)) for s, sp in splits.items()}
    held_out = {t for s in ("val", "test") for t in normalized[s].texts}
    dropped = Counter({"empty_after_normalization": 0, "duplicate_in_train": 0, "in_val_or_test": 0})
    conflicting = 0
    seen: dict[str, int] = {}
    train = Split()
    for text, label in zip(normalized["train"].texts, normalized["train"].labels):
        if not text:
            dropped["empty_after_normalization"] += 1
        elif text in held_out:
            dropped["in_val_or_test"] += 1
        elif text in seen:
            dropped["duplicate_in_train"] += 1
            conflicting += seen[text] != label
        else:
            seen[text] = label
            train.texts.append(text)
            train.labels.append(label)
    normalized["train"] = train
    report = dict(dropped)
    report["duplicates_with_different_label"] = conflicting  # a subset of duplicate_in_train
    return normalized, report


def stratified_subset(split: Split, max_samples: int | None, seed: int) -> Split:
    """At most ``max_samples`` rows with the class balance kept (original order preserved)."""
    if max_samples is None or max_samples >= len(split):
        return split
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(list(range(len(split))), train_size=max_samples, stratify=split.labels, random_state=seed)
    idx.sort()
    return Split([split.texts[i] for i in idx], [split.labels[i] for i in idx])


def write_split(path: str | os.PathLike, split: Split) -> None:
    """JSON lines, ``{"text": ..., "label": ...}``: unambiguous for any character a tweet holds."""
    with atomic_open(path, "w") as handle:
        for text, label in zip(split.texts, split.labels):
            handle.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")


def read_split(path: str | os.PathLike, label_names: list[str] | None = None, names: dict = PARAMS_NAMES) -> Split:
    """Read a processed split written by ``write_split``. With ``label_names`` (``data.label_names``),
    every label must index it: processed data made with other label names is an error naming the line
    (``names``: what the message calls them and advises)."""
    path = Path(path)
    split = Split()
    for line_no, line in enumerate(read_lines(path), 1):
        try:
            row = json.loads(line)
            text, label = row["text"], row["label"]
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path}:{line_no}: expected a JSON object with 'text' and 'label'") from None
        if not isinstance(text, str):
            raise DataError(f"{path}:{line_no}: 'text' is not a string")
        if label_names is None:
            if isinstance(label, bool) or not isinstance(label, int) or label < 0:
                raise DataError(f"{path}:{line_no}: label {label!r} is not a label id (an integer >= 0)")
        else:
            check_label_id(label, label_names, f"{path}:{line_no}", names)
        split.texts.append(text)
        split.labels.append(label)
    return split


def check_every_class_present(
    split: Split, label_names: list[str], path: str | os.PathLike, names: dict = PARAMS_NAMES
) -> None:
    """Training data must hold every class of ``data.label_names``: a name without examples means the
    names and the data disagree (more names than the data has classes) or the data lacks a class."""
    absent = [f"{i} ({name})" for i, name in enumerate(label_names) if i not in set(split.labels)]
    if absent:
        advice = (
            "the processed data was made with other label names (run `dvc repro preprocess`) or lacks that class"
            if names is PARAMS_NAMES
            else "the data lacks that class, or the names are more than its classes"
        )
        raise DataError(
            f"{path}: no examples of label {', '.join(absent)} of {names['label_names']} "
            f"({len(label_names)} names); {advice}"
        )


def class_counts(split: Split, label_names: list[str]) -> dict[str, int]:
    counts = Counter(split.labels)
    return {name: counts.get(i, 0) for i, name in enumerate(label_names)}
