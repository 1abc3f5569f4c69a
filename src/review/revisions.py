"""Reading a revision: the git commit, DVC's params and metrics diffs, and files as they are at a revision."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from src.core.errors import PipelineError

CURVES = "plots/train_{model}.json"  # per-epoch rows of a train stage (bert, lstm)


CONFUSION = "plots/confusion/{model}.csv"


PREDICTIONS = "predictions/{model}/test.txt"


PROBABILITIES = "predictions/{model}/probs_test.csv"


TEST_SPLIT = "data/processed/test.jsonl"


def resolve_rev(rev: str) -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise PipelineError(f"--base {rev}: not a git revision here (fetch it first, e.g. `git fetch origin main`)")
    return result.stdout.strip()


def dvc_diffs(rev: str, with_params: bool = True) -> tuple[dict, dict]:
    """(params diff, metrics diff with unchanged rows) of the workspace against ``rev``, as DVC computes them.

    ``with_params`` False (the base's params.yaml does not parse): no params diff, which would show
    every base param as None."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        params = repo.params.diff(a_rev=rev) if with_params else {}
        metrics = repo.metrics.diff(a_rev=rev, all=True)
    failed = [f"{r}: {e}" for result in (params, metrics) for r, e in result.get("errors", {}).items() if e]
    if failed:
        print(f"warning: DVC could not read some params or metrics ({'; '.join(failed)})", file=sys.stderr)
    return params.get("diff", {}), metrics.get("diff", {})


class Revision:
    """Files as they are at a git revision (git- or DVC-tracked), or in the workspace when ``rev`` is None."""

    def __init__(self, rev: str | None):
        self.rev, self._repo = rev, None

    def read(self, path: str) -> str | None:
        if self.rev is None:
            return Path(path).read_text(encoding="utf-8") if Path(path).is_file() else None
        if self._repo is None:
            from dvc.repo import Repo

            self._repo = Repo.open(".", rev=self.rev, subrepos=True, uninitialized=True)
        from dvc.exceptions import DvcException
        from dvc_data.index.index import DataIndexError

        try:
            with self._repo.dvcfs.open(path, mode="r", encoding="utf-8") as handle:
                return handle.read()
        # not at that revision (FileNotFoundError), its DVC cache is not here (DataIndexError: a directory
        # output's listing was never pulled), or its dvc.yaml cannot be resolved (params.yaml broken)
        except (OSError, DvcException, DataIndexError):
            return None

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()


def label_names() -> list[str]:
    from src.core.params import load_params

    return load_params()["data"]["label_names"]


def evaluate_models(dvc_yaml: str | os.PathLike = "dvc.yaml") -> list[str]:
    """The models of dvc.yaml's ``evaluate`` foreach (evaluate@bert, ...), in its order."""
    from ruamel.yaml import YAML

    try:
        foreach = YAML(typ="safe", pure=True).load(Path(dvc_yaml).read_text(encoding="utf-8"))["stages"]["evaluate"][
            "foreach"
        ]
    except Exception as exc:  # noqa: BLE001 - unreadable, not YAML, or no such stage: one line either way
        raise PipelineError(
            f"{dvc_yaml}: no stages.evaluate.foreach to take the models from ({type(exc).__name__})"
        ) from None
    models = [str(key) for key in foreach] if isinstance(foreach, (dict, list)) else []
    # a model's name becomes part of file names (predictions/<model>/, reliability_<model>.png)
    if not models or not all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", model) for model in models):
        raise PipelineError(
            f"{dvc_yaml}: stages.evaluate.foreach = {foreach!r:.200}: expected model names (letters, digits, _ and -)"
        )
    return models


def base_params_problem(text: str | None) -> str | None:
    """Why the base's params.yaml cannot be compared (not YAML, not a mapping), or None when it can."""
    from ruamel.yaml import YAML

    if text is None:
        return None
    try:
        params = YAML(typ="safe", pure=True).load(text)
    except Exception as exc:  # noqa: BLE001 - ruamel raises many error types for broken YAML
        return " ".join(str(exc).split())[:200] or type(exc).__name__
    return None if isinstance(params, dict) else f"expected a mapping of params, found {type(params).__name__}"


def parse_labels(text: str | None) -> list[int] | None:
    """The label ids of a predictions/<model>/test.txt, or None when absent or not label ids."""
    if text is None:
        return None
    try:
        return [int(line) for line in text.splitlines()]
    except ValueError:
        return None


def parse_test_split(text: str | None) -> tuple[list[str], list[int]] | None:
    """(texts, labels) of a data/processed/test.jsonl, or None when absent or damaged."""
    if text is None:
        return None
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [row["text"] for row in rows], [int(row["label"]) for row in rows]
    except (ValueError, KeyError, TypeError):
        return None


def read_probabilities(files, model: str, labels: list[str], n: int | None) -> np.ndarray | None:
    """A model's test probabilities at a revision, or None (absent, e.g. written before evaluate kept them)."""
    from src.scoring.probabilities import parse_probabilities

    text = files.read(PROBABILITIES.format(model=model))
    if text is None:
        return None
    try:
        probabilities = parse_probabilities(text, labels, PROBABILITIES.format(model=model))
    except PipelineError:
        return None
    return probabilities if n is None or len(probabilities) == n else None
