"""Load params.yaml with YAML 1.2 rules and validate it against the schema before any work starts.

YAML 1.2 matters: `dvc exp run -S learning_rate=3e-5` writes `3e-05`, which YAML 1.1 (PyYAML's
safe_load) reads as a string; YAML 1.2's core schema reads it as a float.

Types are strict, stricter than JSON Schema's defaults: an integer key takes an int only (``300.0``
is refused: jsonschema would take it and a later ``range(300.0)`` would crash); a number key takes
a finite int or float (no ``.nan``/``.inf``, which pass every ``minimum``); booleans are neither.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from src.core.errors import ParamsError, PipelineError
from src.core.params_schema import PARAMS_SCHEMA

DEFAULT_PARAMS_PATH = Path("params.yaml")
# params.yaml holds a few KB of settings; these bound the time and memory spent on a hostile one
MAX_PARAMS_BYTES = 256 << 10  # read no more than this (the pure-Python YAML parser takes ~3 s for it)
MAX_ALIAS_VALUES = 10_000  # values that YAML aliases may add once expanded (a "billion laughs" file)
MAX_SHOWN_CHARS = 120  # of a value quoted in an error


def _plain(value: Any, _seen: tuple[int, ...] = (), _done: dict | None = None) -> Any:
    """ruamel's safe loader already yields dict/list/str/int/float/bool/None; copy to plain types.

    A recursive alias (``&a [*a]``) is an error rather than endless recursion; a node reached through
    many aliases is converted once and shared (a "billion laughs" file stays small in memory)."""
    if not isinstance(value, (dict, list)):
        return value
    done = {} if _done is None else _done
    if id(value) in _seen:
        raise ParamsError("a YAML alias refers to itself (a recursive structure)")
    if id(value) not in done:
        seen = (*_seen, id(value))
        if isinstance(value, dict):
            done[id(value)] = {str(k): _plain(v, seen, done) for k, v in value.items()}
        else:
            done[id(value)] = [_plain(v, seen, done) for v in value]
    return done[id(value)]


def _expanded_size(value: Any, sizes: dict[int, int]) -> int:
    """How many values ``value`` holds once every alias is expanded (shared nodes counted once each
    time they are reached, memoised by identity so a bomb is measured without being expanded)."""
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) not in sizes:
        sizes[id(value)] = 1  # while measuring it: a recursive alias counts once (_plain reports it)
        sizes[id(value)] = 1 + sum(
            _expanded_size(v, sizes) for v in (value.values() if isinstance(value, dict) else value)
        )
    return sizes[id(value)]


def _check_expanded_size(params: dict) -> None:
    """Refuse params whose aliases add more than MAX_ALIAS_VALUES values once expanded, naming the
    key where they do: the schema check (and DVC) would otherwise walk every expanded value."""
    sizes: dict[int, int] = {}
    expanded = _expanded_size(params, sizes)
    written = _written_size(params, set())
    if expanded - written > MAX_ALIAS_VALUES:
        key, node = max(params.items(), key=lambda item: _expanded_size(item[1], sizes))
        while isinstance(node, (dict, list)) and node:
            items = node.items() if isinstance(node, dict) else enumerate(node)
            inner, child = max(items, key=lambda item: _expanded_size(item[1], sizes))
            if _expanded_size(child, sizes) * 2 < _expanded_size(node, sizes):
                break
            key, node = f"{key}.{inner}", child
        raise ParamsError(
            f"{key}: YAML aliases expand it to {_expanded_size(node, sizes):,} values; refusing more "
            f"than {MAX_ALIAS_VALUES:,} values from aliases (expected a few settings)"
        )


def _written_size(value: Any, seen: set[int]) -> int:
    """How many values the file itself spells out: a container reached again through an alias counts once."""
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) in seen:
        return 1
    seen.add(id(value))
    return 1 + sum(_written_size(v, seen) for v in (value.values() if isinstance(value, dict) else value))


def shorten(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for quoting a value in a one-line error
    (never builds the repr of a huge value: containers are shortened item by item)."""
    if isinstance(value, (list, dict)):
        items = list(value.items())[:20] if isinstance(value, dict) else value[:20]
        parts, length = [], 2
        for item in items:
            part = f"{shorten(item[0], 40)}: {shorten(item[1], 40)}" if isinstance(value, dict) else shorten(item, 40)
            parts.append(part)
            length += len(part) + 2
            if length > limit:
                break
        more = len(value) - len(parts)
        body = ", ".join(parts) + (f", ... ({len(value):,} items)" if more > 0 else "")
        return ("{%s}" if isinstance(value, dict) else "[%s]") % body
    text = repr(value[: limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_integer(checker, instance) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_number(checker, instance) -> bool:
    return isinstance(instance, (int, float)) and not isinstance(instance, bool) and math.isfinite(instance)


# Draft 2020-12 with strict numeric types (the module docstring says why); every schema keyword,
# "integer" and "number" wherever they appear, goes through these checks.
StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number}
    ),
)


def _dotted(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(error: jsonschema.ValidationError, name: Callable[[list], str] | None = None, plain: bool = False) -> str:
    """One line per error: the key's name (``name`` of its path; dotted by default), the value found and
    what was expected (``plain``: in the command lines' words, "a whole number >= 1")."""
    where = list(error.absolute_path)
    key = name or _dotted
    if "propertyNames" in error.schema_path:
        return f"{key(where)} key {shorten(error.instance)}: expected {error.schema.get('description', error.message)}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        keys = ", ".join(key(where + [k])[:80] for k in unknown[:10]) + (
            f" (and {len(unknown) - 10:,} more)" if len(unknown) > 10 else ""
        )
        return f"unknown key {keys}: expected one of {', '.join(allowed)}"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"missing key {key(where + [missing])}"
    if plain and (wording := _plain_expected(error)):
        return f"{key(where)} = {shorten(error.instance)}: {wording}"
    if error.validator in ("anyOf", "oneOf") and "description" in error.schema:
        return f"{key(where)} = {shorten(error.instance)}: expected {error.schema['description']}"
    expected = {
        "type": lambda v: (
            f"expected type {v if isinstance(v, str) else ' or '.join(v)}" + _type_hint(error.instance, v)
        ),
        "enum": lambda v: "expected one of " + ", ".join("null" if x is None else str(x) for x in v),
        "minimum": lambda v: f"expected a value >= {v}",
        "maximum": lambda v: f"expected a value <= {v}",
        "exclusiveMinimum": lambda v: f"expected a value > {v}",
        "exclusiveMaximum": lambda v: f"expected a value < {v}",
        "pattern": lambda v: f"expected {error.schema.get('description') or f'a string matching {v}'}",
        "minItems": lambda v: f"expected at least {v} item(s)",
        "minLength": lambda v: "expected a non-empty string",
        "uniqueItems": lambda v: "expected unique items",
    }.get(error.validator)
    detail = expected(error.validator_value) if expected else shorten(error.message, 300)
    return f"{key(where)} = {shorten(error.instance)}: {detail}"


def _plain_expected(error: jsonschema.ValidationError) -> str | None:
    """What a number, flag or choice must be, in the words of a command line's help (None: as for params)."""
    schema, value = error.schema, error.instance
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if error.validator == "enum":
        return "expected one of " + ", ".join("null" if x is None else str(x) for x in error.validator_value)
    if error.validator not in ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return None
    if "boolean" in kinds:
        return "expected true or false"
    if "string" in kinds and error.validator == "type":
        return "expected " + schema.get("description", "text") + (" or null" if "null" in kinds else "")
    if "array" in kinds and error.validator == "type":
        return "expected a list" + (" or null" if "null" in kinds else "")
    if "integer" in kinds:
        kind = "a whole number"
    elif "number" in kinds:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        kind = "a finite number" if is_number and not math.isfinite(value) else "a number"
    else:
        return None
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    if error.validator in bounds:
        return f"expected {kind} {bounds[error.validator]} {error.validator_value}"
    low = next((f" {bounds[k]} {schema[k]}" for k in ("minimum", "exclusiveMinimum") if k in schema), "")
    return f"expected {kind}{low}"


def check_values(values: dict, schema: dict, source: str, name: Callable[[list], str] | None = None) -> dict:
    """Raise one PipelineError line naming ``source`` and every key (by ``name``) whose value ``schema``
    refuses, in the command lines' words: a config file's and a command line's values go through the same
    definitions as params.yaml's (src/core/params_schema.py)."""
    errors = sorted(StrictValidator(schema).iter_errors(values), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        problems = "; ".join(_describe(e, name, plain=True) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise PipelineError(f"{source}{': ' if source else ''}{problems}{more}")
    return values


def _type_hint(instance: Any, expected: str | list[str]) -> str:
    if "integer" in expected and isinstance(instance, float) and math.isfinite(instance) and instance.is_integer():
        return f" (write {int(instance)}, not {instance})"
    if isinstance(instance, float) and not math.isfinite(instance):
        return " (a finite value)"
    return ""


def validate_params(params: Any, source: str = "params.yaml") -> dict:
    """Raise ParamsError listing every schema violation by dotted key path."""
    validator = StrictValidator(PARAMS_SCHEMA)
    errors = sorted(validator.iter_errors(params), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = "\n".join(f"  - {_describe(e)}" for e in errors)
        raise ParamsError(f"{source} is invalid:\n{lines}")
    return params


def load_params(path: str | os.PathLike = DEFAULT_PARAMS_PATH) -> dict:
    """Read and validate params.yaml; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found (run stages from the repository root)")
    with open(path, "rb") as handle:
        data = handle.read(MAX_PARAMS_BYTES + 1)
    if len(data) > MAX_PARAMS_BYTES:
        raise ParamsError(f"{path}: larger than {MAX_PARAMS_BYTES >> 10} KB; expected a params file of a few KB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParamsError(f"{path}:{line}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    yaml = YAML(typ="safe", pure=True)  # YAML 1.2 core schema: 3e-05 is a float
    try:
        raw = yaml.load(text)
    except YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ParamsError(f"{path}: not valid YAML: {detail}") from None
    except RecursionError:
        raise ParamsError(f"{path}: nested too deeply to read") from None
    if not isinstance(raw, dict):
        found = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ParamsError(f"{path}: expected a mapping of params (key: value), the file is {found}")
    try:
        _check_expanded_size(raw)
        plain = _plain(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None
    return validate_params(plain, source=str(path))
