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
from src.core.paths import check_link_inside_repository
from src.core.secrets import redact, redact_params

# a train stage's DVCLive rows (src/training/live.py): the curves of bert and lstm
CURVES = "dvclive/train_{model}/plots/metrics/{series}.tsv"
CURVE_SERIES = ("train/loss", "val/loss", "val/macro_recall", "val/accuracy", "val/macro_f1")
CONFUSION = "plots/confusion/{model}.csv"
PREDICTIONS = "predictions/{model}/test.txt"
PROBABILITIES = "predictions/{model}/probs_test.csv"
TEST_SPLIT = "data/processed/test.jsonl"
# a model's figures: the DVC metric, every test figure, the training summary (src/review/sections.py QUALITY)
FIGURES = ("metrics/{model}/macro_recall.json", "metrics/{model}/test.json", "metrics/{model}/train.json")


def commit_of(rev: str) -> str | None:
    """The commit a git revision (a branch, a tag, a sha) names, or None when it names none here."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], capture_output=True, text=True
    )
    return result.stdout.strip() if result.returncode == 0 else None


def resolve_rev(rev: str) -> str:
    """The commit of a git revision (a branch, a tag, a sha)."""
    commit = commit_of(rev)
    if commit is None:
        raise PipelineError(f"--base {rev}: not a git revision here (fetch it first, e.g. `git fetch origin main`)")
    return commit


def resolve_experiment(name: str) -> str:
    """The commit of a DVC experiment, by the name `dvc exp show` gives it (or its sha)."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        from dvc.repo.experiments.utils import resolve_name

        ref = resolve_name(repo.scm, [name]).get(name)
        if ref is not None:
            return repo.scm.get_ref(str(ref))
    commit = commit_of(name)
    if commit is None:
        raise PipelineError(
            f"--exp {name}: no such experiment here (`dvc exp show` lists them; `dvc exp pull origin {name}` "
            "fetches a pushed one)"
        )
    return commit


def params_diff(rev: str, new_rev: str | None = None) -> dict:
    """params.yaml's changes from ``rev`` to ``new_rev`` (the workspace when None), as DVC computes them."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        params = repo.params.diff(a_rev=rev, **({} if new_rev is None else {"b_rev": new_rev}))
    failed = [f"{r}: {e}" for r, e in params.get("errors", {}).items() if e]
    if failed:
        print(redact(f"warning: DVC could not read some params ({'; '.join(failed)})"), file=sys.stderr)
    return redact_params(params.get("diff", {}))  # a URL's password (tune.storage) reaches no report


def flatten(tree, prefix: str = "") -> dict:
    """A JSON object's numbers by dotted key: {"val": {"accuracy": 0.6}} -> {"val.accuracy": 0.6}."""
    if not isinstance(tree, dict):
        return {}
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = value
    return flat


def read_json(files, path: str, notes: list[str] | None = None, side: str = ""):
    """A JSON file at a revision, or None when absent; a damaged one is None and a note."""
    text = files.read(path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        if notes is not None:
            notes.append(f"{side}: {path} is not valid JSON; its figures are not compared")
        return None


def figures_diff(model: str, old_files, new_files, notes: list[str] | None = None) -> dict:
    """A model's figures at both revisions, as ``{path: {dotted key: {"old": .., "new": ..}}}``."""
    diff = {}
    for pattern in FIGURES:
        path = pattern.format(model=model)
        old, new = (
            flatten(read_json(files, path, notes, side)) for files, side in ((old_files, "base"), (new_files, "new"))
        )
        if old or new:
            diff[path] = {key: {"old": old.get(key), "new": new.get(key)} for key in {**old, **new}}
    return diff


def parse_tsv(text: str | None) -> list[dict] | None:
    """DVCLive's rows (step, value), or None when absent or damaged."""
    if text is None:
        return None
    lines = text.splitlines()
    try:
        header = lines[0].split("\t")
        if "step" not in header:  # DVCLive's first column: the x of every curve
            return None
        rows = [dict(zip(header, (float(cell) for cell in line.split("\t")))) for line in lines[1:] if line]
    except (IndexError, ValueError):
        return None
    return rows if all(len(row) == len(header) for row in rows) else None


def read_curves(files, model: str, notes: list[str] | None = None, side: str = "") -> dict | None:
    """A train stage's DVCLive curves at a revision, ``{series: rows}``, or None when it has none; a
    damaged series is left out, with a note."""
    curves = {}
    for series in CURVE_SERIES:
        path = CURVES.format(model=model, series=series)
        text = files.read(path)
        rows = parse_tsv(text)
        if rows:
            curves[series] = rows
        elif text is not None and rows is None and notes is not None:
            notes.append(f"{side}: {path} is not DVCLive's tab-separated rows; no {series} curve for {model}")
    return curves or None


# Every file a review reads (metrics, predictions, probabilities, curves) is a few MB at most; a larger one
# is treated as absent rather than read whole
MAX_FILE_BYTES = 64 << 20


def read_workspace_file(path: Path) -> str | None:
    """A workspace file's text; None when absent, over MAX_FILE_BYTES or a link out of the repository."""
    if not path.is_file():
        return None
    try:
        check_link_inside_repository(path, "a file for the review")
    except PipelineError:
        return None
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    return data.decode("utf-8") if len(data) <= MAX_FILE_BYTES else None


class Revision:
    """Files as they are at a git revision (git- or DVC-tracked), or in the workspace when ``rev`` is None."""

    def __init__(self, rev: str | None):
        self.rev, self._repo = rev, None

    def read(self, path: str) -> str | None:
        """The file's text, or None when absent, unreadable or not text."""
        try:
            return self._read(path)
        except (UnicodeDecodeError, OSError):
            return None

    def _read(self, path: str) -> str | None:
        if self.rev is None:
            return read_workspace_file(Path(path))
        if self._repo is None:
            from dvc.repo import Repo

            self._repo = Repo.open(".", rev=self.rev, subrepos=True, uninitialized=True)
        from dvc.exceptions import DvcException
        from dvc_data.index.index import DataIndexError

        try:
            with self._repo.dvcfs.open(path, mode="rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
            return data.decode("utf-8") if len(data) <= MAX_FILE_BYTES else None
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


def parse_labels(text: str | None, n_classes: int | None = None) -> list[int] | None:
    """The label ids of a predictions/<model>/test.txt, or None when absent or not label ids (0..n_classes-1)."""
    if text is None:
        return None
    try:
        labels = [int(line) for line in text.splitlines()]
    except ValueError:
        return None
    if n_classes is not None and any(not 0 <= label < n_classes for label in labels):
        return None
    return labels


def parse_test_split(text: str | None) -> tuple[list[str], list[int]] | None:
    """(texts, labels) of a data/processed/test.jsonl, or None when absent or damaged."""
    if text is None:
        return None
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [row["text"] for row in rows], [int(row["label"]) for row in rows]
    except (ValueError, KeyError, TypeError):
        return None


def read_probabilities(
    files, model: str, labels: list[str], n: int | None, notes: list[str] | None = None, side: str = ""
) -> np.ndarray | None:
    """A model's test probabilities at a revision, or None (absent, e.g. written before evaluate kept them);
    a damaged file, or one of another length, is None and a note."""
    from src.scoring.probabilities import parse_probabilities

    path = PROBABILITIES.format(model=model)
    text = files.read(path)
    if text is None:
        return None
    try:
        probabilities = parse_probabilities(text, labels, path)
    except PipelineError as exc:
        if notes is not None:
            notes.append(f"{side}: {exc}; its probabilities are not compared")
        return None
    if n is not None and len(probabilities) != n:
        if notes is not None:
            notes.append(f"{side}: {path} has {len(probabilities)} rows for {n} test tweets; not compared")
        return None
    return probabilities


def probabilities_of_both(
    base_files, new_files, model: str, labels: list[str], n: int | None, notes: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``read_probabilities`` at the base revision and in the workspace, each damaged side a note."""
    return (
        read_probabilities(base_files, model, labels, n, notes, "base"),
        read_probabilities(new_files, model, labels, n, notes, "new"),
    )
