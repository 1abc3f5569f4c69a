"""Read a JSON object from a file (a config, a model directory's metadata): anything else is one
PipelineError naming the file, and the line where the JSON breaks.

The file is size-capped before it is parsed, and nesting too deep for the parser is an error, not a
RecursionError: a hostile config costs at most ``max_bytes`` of memory and one error line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from src.core.errors import PipelineError

MAX_JSON_BYTES = 64 << 20  # a model directory's metadata; far above any real one
MAX_CONFIG_BYTES = 1 << 20  # a command line's --config file: a few settings


def _size(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"


def read_json_object(path: str | os.PathLike, what: str = "", max_bytes: int = MAX_JSON_BYTES) -> dict:
    """The JSON object in ``path`` (at most ``max_bytes``); ``what`` (e.g. the stage to re-run) ends every error."""
    path, advice = Path(path), f"; {what}" if what else ""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PipelineError(f"{path}: more than {_size(max_bytes)}; expected a small JSON file{advice}")
        value = json.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path}: file not found{advice}") from None
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}){advice}") from None
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}){advice}") from None
    except RecursionError:
        raise PipelineError(f"{path}: nested too deeply to read{advice}") from None
    except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits
        raise PipelineError(f"{path}: not readable JSON ({' '.join(str(exc).split())[:200]}){advice}") from None
    except MemoryError:
        raise PipelineError(f"{path}: too large to read into memory{advice}") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: a directory, expected a JSON file{advice}") from None
    except OSError as exc:
        raise PipelineError(f"{path}: cannot be read ({exc.strerror or exc}){advice}") from None
    if not isinstance(value, dict):
        raise PipelineError(f"{path}: expected a JSON object, found {type(value).__name__}{advice}")
    return value
