"""Load params.yaml with YAML 1.2 rules and validate it against the schema before any work starts.

YAML 1.2 matters: `dvc exp run -S learning_rate=3e-5` writes `3e-05`, which YAML 1.1 (PyYAML's
safe_load) reads as a string; YAML 1.2's core schema reads it as a float.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from src.errors import ParamsError
from src.params_schema import PARAMS_SCHEMA

DEFAULT_PARAMS_PATH = Path("params.yaml")


def _plain(value: Any) -> Any:
    """ruamel's safe loader already yields dict/list/str/int/float/bool/None; copy to plain types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _dotted(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    """One line per error: the key's dotted path, the value found and what was expected."""
    where = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        keys = ", ".join(_dotted(where + [k]) for k in unknown)
        return f"unknown key {keys}: expected one of {', '.join(allowed)}"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"missing key {_dotted(where + [missing])}"
    expected = {
        "type": lambda v: f"expected type {v if isinstance(v, str) else ' or '.join(v)}",
        "enum": lambda v: "expected one of " + ", ".join("null" if x is None else str(x) for x in v),
        "minimum": lambda v: f"expected a value >= {v}",
        "maximum": lambda v: f"expected a value <= {v}",
        "exclusiveMinimum": lambda v: f"expected a value > {v}",
        "exclusiveMaximum": lambda v: f"expected a value < {v}",
        "pattern": lambda v: f"expected a string matching {v}",
        "minItems": lambda v: f"expected at least {v} item(s)",
        "minLength": lambda v: "expected a non-empty string",
        "uniqueItems": lambda v: "expected unique items",
    }.get(error.validator)
    detail = expected(error.validator_value) if expected else error.message
    return f"{_dotted(where)} = {error.instance!r}: {detail}"


def validate_params(params: Any, source: str = "params.yaml") -> dict:
    """Raise ParamsError listing every schema violation by dotted key path."""
    validator = jsonschema.Draft202012Validator(PARAMS_SCHEMA)
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
    yaml = YAML(typ="safe", pure=True)  # YAML 1.2 core schema: 3e-05 is a float
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"))
    except YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return validate_params(_plain(raw), source=str(path))
