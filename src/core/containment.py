"""A stage's declared inputs and outputs stay inside the repository, symbolic links resolved.

The rule (README, "When things go wrong"): a path is checked by where it resolves, not by its name.
Every input and output dvc.yaml declares for the running stage (``deps``, ``outs``, ``metrics``,
``plots``; ``${data.input}``, ``${key}`` and ``${item}`` filled in), and every directory on the way
to it (``plots/`` itself, ``models/``), may be a symbolic link only to somewhere inside the
repository (the working directory, where DVC runs stages) or inside the DVC cache directory
(DVC's ``cache.type: symlink`` checks files out as links into it: .dvc/cache, or ``cache.dir``).
Anything else stops the stage before it does any work, with one line naming the link, its target
and the root. The atomic writers (src/core/atomic.py) check their target the same way, so a path a
stage writes without declaring it cannot escape either. A path named outside the repository (a
test's temporary directory, ``--model /elsewhere``) is not this rule's: its own reader checks it.
"""

from __future__ import annotations

import configparser
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from src.core.errors import PipelineError

_VARIABLE = re.compile(r"\$\{\s*([\w.@-]+)\s*\}")


def dvc_cache_dir(root: Path) -> Path | None:
    """The DVC cache directory ``cache.dir`` names in .dvc/config or .dvc/config.local (resolved
    against .dvc/, as DVC does), or None when neither sets one (the cache is .dvc/cache, inside)."""
    cache = None
    for name in ("config", "config.local"):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read(root / ".dvc" / name)
        except configparser.Error:
            continue  # DVC itself reports a config it cannot read
        value = parser.get("cache", "dir", fallback=None) or parser.get("'cache'", "dir", fallback=None)
        if value:
            cache = (root / ".dvc" / value.strip().strip("'\"")).resolve()
    return cache


def check_inside_repository(paths: Iterable[str | os.PathLike], action: str) -> None:
    """Each of ``paths`` under the working directory, and each directory on the way to it, is no symbolic
    link resolving outside the repository (or the DVC cache); else a PipelineError
    ``<link>: a symbolic link to <target>, outside <root>; refusing to <action>``."""
    cwd = Path.cwd()  # os.getcwd(): already the physical path
    root = cwd.resolve()
    allowed: list[Path] | None = None
    for path in paths:
        absolute = Path(os.path.abspath(path))
        if not absolute.is_relative_to(cwd):
            continue
        for depth in range(len(cwd.parts) + 1, len(absolute.parts) + 1):
            part = Path(*absolute.parts[:depth])
            if not part.is_symlink():
                if not part.exists():
                    break  # nothing below it exists yet: the writer creates plain directories
                continue
            target = part.resolve()
            if target.is_relative_to(root):
                continue
            if allowed is None:
                allowed = [c for c in [dvc_cache_dir(root)] if c is not None]
            if any(target.is_relative_to(c) for c in allowed):
                continue
            raise PipelineError(
                f"{part.relative_to(cwd)}: a symbolic link to {target}, outside {root}; refusing to {action}"
            )


# ---- the running stage's declared paths, from dvc.yaml ---------------------------------------------------
def _fill(text: str, variables: dict[str, Any]) -> str | None:
    """``text`` with each ``${name}`` replaced from ``variables`` (dotted names look into dicts); None
    when one is missing or not a scalar (DVC reports that itself)."""
    missing = False

    def value(match: re.Match) -> str:
        nonlocal missing
        node: Any = variables
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                missing = True
                return ""
            node = node[part]
        if isinstance(node, (dict, list)) or node is None:
            missing = True
            return ""
        return str(node)

    filled = _VARIABLE.sub(value, text)
    return None if missing else filled


def _names(entries: Any) -> list[str]:
    """The paths of a dvc.yaml list of outputs or dependencies (``- path`` or ``- path: {options}``)."""
    names = []
    for entry in entries or []:
        if isinstance(entry, str):
            names.append(entry)
        elif isinstance(entry, dict):
            names += [key for key in entry if isinstance(key, str)]
    return names


def _safe_yaml() -> YAML:
    return YAML(typ="safe")


def stage_paths(params: dict, dvc_yaml: str = "dvc.yaml") -> list[tuple[str, str, list[str], list[str]]]:
    """(name, cmd, inputs, outputs) of every stage dvc.yaml declares (a ``foreach`` stage: one per item,
    ``name@key``), variables filled in from ``params``; [] when there is no dvc.yaml here."""
    try:
        with open(dvc_yaml, encoding="utf-8") as handle:
            stages = (_safe_yaml().load(handle) or {}).get("stages")
    except (OSError, YAMLError, AttributeError):
        return []
    result = []
    for name, definition in (stages or {}).items() if isinstance(stages, dict) else ():
        if not isinstance(definition, dict):
            continue
        body = definition.get("do", definition)
        if not isinstance(body, dict):
            continue
        foreach = definition.get("foreach")
        if "do" in definition and isinstance(foreach, (dict, list)):
            items = foreach.items() if isinstance(foreach, dict) else ((item, item) for item in foreach)
            choices = [(f"{name}@{key}", {**params, "key": key, "item": item}) for key, item in items]
        else:
            choices = [(name, params)]
        for stage, variables in choices:
            cmd = _fill(body["cmd"], variables) if isinstance(body.get("cmd"), str) else None
            inputs = [p for p in (_fill(n, variables) for n in _names(body.get("deps"))) if p]
            outputs = [
                p
                for key in ("outs", "metrics", "plots")
                for p in (_fill(n, variables) for n in _names(body.get(key)))
                if p
            ]
            result.append((stage, cmd or "", inputs, outputs))
    return result


def declared_paths(module: str, argv: Sequence[str], params: dict, dvc_yaml: str = "dvc.yaml") -> tuple[list, list]:
    """(inputs, outputs) dvc.yaml declares for the stage whose ``cmd`` runs ``module`` with ``argv``
    (a ``foreach`` stage: the item whose cmd ends with ``argv``); ([], []) when no stage runs it here."""
    for stage, cmd, inputs, outputs in stage_paths(params, dvc_yaml):
        tokens = cmd.split()
        if module in tokens and ("@" not in stage or tokens[tokens.index(module) + 1 :] == list(argv)):
            return inputs, outputs
    return [], []


def running_module() -> str:
    """The running stage's module name (``stages.train_tfidf``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return spec.name
    path = Path(sys.argv[0]).with_suffix("")
    return ".".join(path.parts[-2:]) if path.parent.name == "stages" else path.name


def check_declared_paths(module: str, argv: Sequence[str], params: dict) -> None:
    """dvc.yaml's inputs and outputs of the stage running ``module`` ``argv``, checked before it does any
    work: none is, or lies under, a symbolic link resolving outside the repository."""
    inputs, outputs = declared_paths(module, argv, params)
    stage = module.rsplit(".", 1)[-1]
    check_inside_repository(outputs, f"write or delete {stage}'s output there")
    check_inside_repository(inputs, f"read {stage}'s input from there")


def check_every_stage(verb: str, inputs_too: bool = True) -> None:
    """Every stage's declared outputs (and inputs): no symbolic link out of the repository on the way. For
    what runs before any stage does: `dvc repro` removes a stage's outputs before running it, and `dvc pull`
    checks them out, through a link as readily as not."""
    try:  # for ${data.input}: the raw text, as DVC reads it (a params error is the stages' to report)
        params = _safe_yaml().load(Path("params.yaml").read_text(encoding="utf-8"))
    except (OSError, YAMLError):
        params = None
    for stage, _, inputs, outputs in stage_paths(params if isinstance(params, dict) else {}):
        check_inside_repository(outputs, f"{verb} {stage}'s output there")
        if inputs_too:
            check_inside_repository(inputs, f"read {stage}'s input from there")


if __name__ == "__main__":  # `make repro` runs it before `dvc repro`
    from src.core.cli import run_command

    run_command(lambda: check_every_stage("write or delete"))
