"""Generated bad input (hypothesis), on top of the hand-written rows of test_bad_input.py.

Properties:
- params: validate_params / load_params either accept or raise ParamsError naming the dotted key;
  nothing else escapes, and what is accepted has the schema's strict types (no 300.0 for an integer).
- raw data lines: the readers either parse (and every label follows the one label rule) or raise
  DataError naming file:line (or the file, for whole-file problems); nothing else escapes.
- src.predict reads stdin by the same rules as --input FILE.

In-process and derandomized (the same examples every run: a red CI is never a matter of luck);
no deadline, a bounded number of examples, no example database written into the repository.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from src.core.errors import DataError, ParamsError
from src.core.params import load_params, validate_params
from src.core.params_schema import PARAMS_SCHEMA
from src.data import preprocess as pp
from src.predict import read_texts

REPO = Path(__file__).resolve().parents[1]
SHIPPED = load_params(REPO / "params.yaml")
LABELS = ["negative", "neutral", "positive"]
FAST = settings(
    deadline=None,
    max_examples=150,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _key_paths(value, prefix=()):
    """Every dotted path in the shipped params (mappings and list items), the leaves and the sections."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _key_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _key_paths(item, (*prefix, index))


KEY_PATHS = [p for p in _key_paths(SHIPPED) if p]


def _schema_at(path) -> dict:
    schema = PARAMS_SCHEMA
    for part in path:
        if isinstance(part, int):
            schema = schema.get("items", {})
        else:
            schema = schema.get("properties", {}).get(part) or schema.get("additionalProperties") or {}
    return schema


def _dotted(path) -> str:
    return ".".join(str(p) for p in path)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e6, max_value=1e6).map(round).map(float),
    st.text(max_size=12),
    st.sampled_from(["../x.txt", "/abs/x.txt", "a/b.txt", "", " 1", "300.0", "auto", "25d"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)


def _near_misses(original) -> st.SearchStrategy:
    """Values one step from the shipped one: the other numeric type, a string, wrapped, non-finite."""
    misses = [str(original), [original], {"x": original}, None, float("nan"), float("inf"), -float("inf")]
    if isinstance(original, bool):
        misses += [int(original), float(original)]
    elif isinstance(original, int):
        misses += [float(original), float(original) + 0.5, original + 1, original - 1, 0, -1, True]
    elif isinstance(original, float):
        misses += [int(original), round(original) + 0.0, True, -original]
    elif isinstance(original, str):
        misses += [f" {original}", f"{original} ", f"../{original}", f"/{original}", f"a/{original}", ""]
    return st.sampled_from(misses)


@st.composite
def _mutation(draw):
    path = draw(st.sampled_from(KEY_PATHS))
    original = _lookup(SHIPPED, path)
    return path, draw(st.one_of(_near_misses(original), VALUES))


@settings(FAST, max_examples=400)
@given(mutation=_mutation())
def test_any_value_at_any_key_is_accepted_or_named(mutation):
    path, value = mutation
    params = copy.deepcopy(SHIPPED)
    target = params
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    try:
        validate_params(params)
    except ParamsError as exc:
        assert _dotted(path) in str(exc), str(exc)
        return
    # accepted: the value has the schema's strict types
    for sub_path in _key_paths(value):
        leaf = _lookup(value, sub_path)
        schema = _schema_at((*path, *sub_path))
        types = schema.get("type", [])
        types = [types] if isinstance(types, str) else types
        if isinstance(leaf, float):
            assert math.isfinite(leaf) and ("number" in types or not types), (path, sub_path, leaf)
        if "integer" in types and "number" not in types and leaf is not None:
            assert isinstance(leaf, int) and not isinstance(leaf, bool), (path, sub_path, leaf)


def _lookup(value, path):
    for part in path:
        value = value[part]
    return value


def test_every_integer_key_refuses_a_whole_number_float():
    """Every key the schema types as integer, found by walking the shipped params: N.0 is refused by name."""
    checked = 0
    for path in KEY_PATHS:
        types = _schema_at(path).get("type", [])
        types = [types] if isinstance(types, str) else types
        if "integer" not in types:
            continue
        params = copy.deepcopy(SHIPPED)
        target = _lookup(params, path[:-1])
        original = target[path[-1]]
        target[path[-1]] = float(original if isinstance(original, int) else 3)
        with pytest.raises(ParamsError, match=re.escape(f"{_dotted(path)} = ") + r".*expected type integer"):
            validate_params(params)
        target[path[-1]] = bool(original)
        with pytest.raises(ParamsError, match=re.escape(f"{_dotted(path)} = ")):
            validate_params(params)
        checked += 1
    assert checked >= 15  # num_epochs, batch_size, seeds, lstm sizes, vocab, tune, evaluate ...


@FAST
@given(text=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_any_params_file_is_read_or_named(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_bytes(text)
    try:
        load_params(path)
    except ParamsError as exc:
        assert str(exc).startswith(str(path)), str(exc)


# ---- raw data lines ----------------------------------------------------------------------------------
LABEL_TOKENS = st.one_of(
    st.sampled_from(["0", "1", "2", *LABELS]),
    st.sampled_from(["3", "-1", "+1", "01", "1 ", " 1", "1.0", "１", "Neutral", "", "\t2"]),
    st.text(max_size=4),
)
LINE = st.one_of(st.text(max_size=30), st.binary(max_size=30).map(lambda b: b.decode("latin-1")))
WHERE = re.compile(r"^(?P<file>[^:]+)(:(?P<line>[0-9]+))?(:| has )")


def _names_file_and_line(message: str, directory: Path) -> None:
    match = WHERE.match(message)
    assert match and match["file"].startswith(str(directory)), message


def _label_rule_holds(token: str) -> bool:
    return token in LABELS or token in {"0", "1", "2"}


TEXT_LINE = LINE.map(lambda t: t.replace("\n", " "))


@FAST
@given(rows=st.lists(st.tuples(TEXT_LINE, LABEL_TOKENS.filter(lambda t: "\n" not in t)), min_size=1, max_size=6))
def test_tweeteval_files_parse_or_name_the_line(tmp_path_factory, rows):
    from tests.fixtures import write_tweeteval

    directory = write_tweeteval(
        tmp_path_factory.mktemp("raw"), {s: [("a tweet", 0), ("another", 2)] for s in pp.SPLITS}
    )
    (directory / "train_text.txt").write_bytes(b"".join(t.encode("utf-8", "surrogatepass") + b"\n" for t, _ in rows))
    (directory / "train_labels.txt").write_text("".join(f"{label}\n" for _, label in rows), encoding="utf-8")
    try:
        splits = pp.read_tweeteval(directory, LABELS)
    except DataError as exc:
        _names_file_and_line(str(exc), directory)
        return
    tokens = [label.removesuffix("\r") for _, label in rows]
    assert all(_label_rule_holds(t) for t in tokens), tokens  # accepted only what the one rule allows
    assert splits["train"].labels == [LABELS.index(t) if t in LABELS else int(t) for t in tokens]


@FAST
@given(data=st.binary(max_size=80))
def test_any_bytes_are_lines_or_an_error_naming_file_and_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("lines") / "some.txt"
    path.write_bytes(data)
    try:
        lines = pp.read_lines(path)
    except DataError as exc:
        _names_file_and_line(str(exc), path.parent)
        return
    assert len(lines) == data.rstrip(b"\n").count(b"\n") + 1 or data.endswith(b"\n\n")
    assert all("\n" not in line for line in lines)


CSV_FIELD = st.one_of(st.text(max_size=12), st.sampled_from(['"quoted, comma"', '"open quote', 'a"b', "", "\x00"]))


FOLD = st.sampled_from(["train", "val", "test", "dev", " train"])
# a row: text fields (usually one), then label and fold; or a valid row with a field too many or too few
CSV_ROW = st.one_of(
    st.tuples(st.one_of(st.tuples(CSV_FIELD).map(list), st.lists(CSV_FIELD, max_size=4)), LABEL_TOKENS, FOLD).map(
        lambda r: [*r[0], r[1], r[2]]
    ),
    st.tuples(CSV_FIELD, LABEL_TOKENS, FOLD, CSV_FIELD).map(list),
    st.tuples(CSV_FIELD, LABEL_TOKENS).map(list),
)


@FAST
@given(rows=st.lists(CSV_ROW, min_size=1, max_size=8), delimiter=st.sampled_from([",", "\t"]))
def test_csv_rows_parse_or_name_the_line(tmp_path_factory, rows, delimiter):
    directory = tmp_path_factory.mktemp("csv")
    path = directory / ("own.csv" if delimiter == "," else "own.tsv")
    lines = [delimiter.join(["text", "label", "fold"])]
    lines += [delimiter.join(fields) for fields in rows]
    lines += [delimiter.join(["fine", "0", split]) for split in pp.SPLITS]  # every split has a row
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
    csv_params = {
        "text_column": "text",
        "label_column": "label",
        "split_column": "fold",
        "val_size": 0.1,
        "test_size": 0.2,
    }
    try:
        splits = pp.read_csv_dataset(path, csv_params, LABELS, seed=0)
    except DataError as exc:
        _names_file_and_line(str(exc), directory)
        return
    records = [r for r in csv.reader(path.read_text(encoding="utf-8").splitlines(), delimiter=delimiter) if r]
    assert all(len(record) == 3 for record in records), records  # a row of another width is never accepted
    assert sum(len(s) for s in splits.values()) == len(records) - 1
    assert all(_label_rule_holds(record[1]) for record in records[1:])


@FAST
@given(
    data=st.one_of(
        st.binary(max_size=60),
        st.lists(LINE, max_size=5).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
    )
)
def test_predict_reads_stdin_by_the_rules_of_a_file(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("in") / "in.txt"
    path.write_bytes(data)

    def outcome(read):
        try:
            return read()
        except DataError as exc:  # the same error, but for where it came from and how empty is said
            return (
                "error",
                re.sub(r"^[^:]+(:[0-9]+)?: ", r"\1", str(exc)).replace(
                    "no input (it is empty); pipe texts in, one per line", "file is empty"
                ),
            )

    from_file = outcome(lambda: read_texts(str(path)))
    stdin = SimpleNamespace(buffer=io.BytesIO(data))
    saved, sys.stdin = sys.stdin, stdin
    try:
        from_stdin = outcome(lambda: read_texts("-"))
    finally:
        sys.stdin = saved
    assert from_file == from_stdin
