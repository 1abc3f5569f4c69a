"""End to end: `dvc repro` in a temporary git repo, fed by a mirror the test writes."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures import write_mirror

REPO = Path(__file__).resolve().parents[1]


def _run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture
def project(tmp_path):
    """A copy of the pipeline (code, dvc.yaml, params.yaml) as a fresh git + DVC repository."""
    work = tmp_path / "project"
    work.mkdir()
    for name in ("src", "stages"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(REPO / name, work / name)
    env = {**os.environ, "SENTIMENT_MIRROR": str(write_mirror(tmp_path / "mirror")),
           "PYTHONPATH": str(work), "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONSAFEPATH", None)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                ["git", "config", "user.name", "test"], [sys.executable, "-m", "dvc", "init", "-q"],
                ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        _run(cmd, work, env)
    return work, env


def test_repro_build_vocab_then_nothing_to_do(project):
    work, env = project
    dvc = [sys.executable, "-m", "dvc"]
    out = _run(dvc + ["repro", "build_vocab"], work, env)
    for stage in ("download_data", "download_glove", "preprocess", "build_vocab"):
        assert f"Running stage '{stage}'" in out

    data = json.loads((work / "metrics/data.json").read_text())
    assert (data["train"]["rows"], data["val"]["rows"], data["test"]["rows"]) == (48, 12, 12)
    assert data["train"]["class_counts"] == {"negative": 16, "neutral": 16, "positive": 16}
    assert data["train_dropped"]["in_val_or_test"] == 0
    rows = [json.loads(line) for line in (work / "data/processed/train.jsonl").read_text().splitlines()]
    assert rows[0] == {"text": "i hate this !", "label": 0}

    vocab = json.loads((work / "data/vocab/vocab.json").read_text())["tokens"]
    assert vocab[:2] == ["<pad>", "<unk>"]
    matrix = np.load(work / "data/vocab/embeddings.npy")
    assert matrix.shape == (len(vocab), 25)
    coverage = json.loads((work / "metrics/vocab.json").read_text())
    assert coverage["glove"] == "twitter.27B.25d" and coverage["vocab_coverage"] > 0.9

    again = _run(dvc + ["repro", "build_vocab"], work, env)
    assert "Running stage" not in again
    assert "Data and pipelines are up to date" in again


def test_missing_glove_dimension_fails_clearly(project):
    work, env = project
    params = (work / "params.yaml").read_text().replace("dimension: 25d", "dimension: 50d")
    (work / "params.yaml").write_text(params)
    result = subprocess.run([sys.executable, "-m", "dvc", "repro", "download_glove"], cwd=work, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "no member glove.twitter.27B.50d.txt" in result.stdout + result.stderr
    assert not (work / "data/glove/glove.twitter.27B.50d.txt").exists()
