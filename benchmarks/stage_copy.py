"""A throwaway copy of the repository in which a stage runs as a user runs it (for the stage benchmarks).

The copy holds the work tree's files that git does not ignore (or, with ``rev``, the files of that
commit: a bisect), params.yaml with ``-S key=value`` overrides, and data/processed/ with a stratified
subset of this checkout's train split and its full validation split; it is its own git repository,
so ``dvc repro`` runs in it. Run `dvc repro preprocess` here first.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_repository(
    work: Path,
    train_samples: int | None,
    overrides: list[str],
    rev: str | None = None,
    data_dir: Path = ROOT / "data/processed",
) -> None:
    """Fill the empty directory ``work`` (see the module docstring); the splits come from ``data_dir``."""
    from src.core.paths import extract_inside
    from src.data.preprocess import read_split, stratified_subset, write_split

    if rev is None:
        listed = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]  # the work tree, not only commits
        tracked = subprocess.run(listed, cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        for name in tracked:
            if (ROOT / name).is_file():
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, work / name)
    else:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            extract_inside(tar, work, f"git archive {rev}")
    processed = work / "data/processed"
    processed.mkdir(parents=True, exist_ok=True)
    train = stratified_subset(read_split(Path(data_dir) / "train.jsonl"), train_samples, 0)
    write_split(processed / "train.jsonl", train)
    shutil.copy2(Path(data_dir) / "val.jsonl", processed / "val.jsonl")
    set_params(work, overrides)
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=benchmark", "-c", "user.email=benchmark@localhost", "commit", "-qm", "copy"],
    ):
        subprocess.run(command, cwd=work, check=True)


def set_params(work: Path, overrides: list[str]) -> None:
    """Apply ``key=value`` overrides (dotted keys, YAML values, as `dvc exp run -S`) to work/params.yaml."""
    from ruamel.yaml import YAML

    yaml = YAML()
    params = yaml.load((work / "params.yaml").read_text())
    for override in overrides:
        key, value = override.split("=", 1)
        *parents, leaf = key.split(".")
        node = params
        for parent in parents:
            node = node[parent]
        node[leaf] = yaml.load(value)
    with open(work / "params.yaml", "w") as handle:
        yaml.dump(params, handle)
