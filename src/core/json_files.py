"""Read a JSON object from a file (a config, a model directory's metadata): anything else is one
PipelineError naming the file, and the line where the JSON breaks."""

from __future__ import annotations

import json
import os
from pathlib import Path

from src.core.errors import PipelineError


def read_json_object(path: str | os.PathLike, what: str = "") -> dict:
    """The JSON object in ``path``; ``what`` (e.g. the stage to re-run) ends every error message."""
    path, advice = Path(path), f"; {what}" if what else ""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found{advice}") from None
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}){advice}") from None
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}){advice}") from None
    except OSError as exc:
        raise PipelineError(f"{path}: cannot be read ({exc.strerror or exc}){advice}") from None
    if not isinstance(value, dict):
        raise PipelineError(f"{path}: expected a JSON object, found {type(value).__name__}{advice}")
    return value
