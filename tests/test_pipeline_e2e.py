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


def _set_params(path: Path, updates: dict) -> None:
    """Edit params.yaml in place (comments kept), ``{"lstm.epochs": 2, ...}``."""
    from ruamel.yaml import YAML

    yaml = YAML()
    params = yaml.load(path)
    for dotted, value in updates.items():
        *parents, key = dotted.split(".")
        section = params
        for parent in parents:
            section = section[parent]
        section[key] = value
    yaml.dump(params, path)


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_full_repro_then_learning_rate_experiment(project, tmp_path):
    """The review flow of the README on tiny data: repro through evaluate, `dvc exp run -S
    learning_rate=3e-5`, then metrics/params diff, exp show and plots show."""
    from tests.fixtures import write_tiny_bert

    work, env = project
    dvc = [sys.executable, "-m", "dvc"]
    _set_params(work / "params.yaml", {
        "model_name": str(write_tiny_bert(tmp_path / "tiny-bert")), "num_epochs": 8, "learning_rate": 3e-3,
        "batch_size": 4, "max_length": 32, "bert.eval_batch_size": 16,
        "lstm.hidden_dim": 8, "lstm.epochs": 2, "lstm.batch_size": 8,
        "tune.n_trials": 1, "tune.train_fraction": 1.0, "evaluate.batch_size": 16,
    })
    env = {**env, "OMP_NUM_THREADS": "1"}
    out = _run(dvc + ["repro"], work, env)
    for stage in ("preprocess", "build_vocab", "train_bert", "train_lstm", "tune", "evaluate"):
        assert f"Running stage '{stage}'" in out

    scores = json.loads((work / "metrics/evaluate.json").read_text())
    assert set(scores) == {"majority_baseline", "bert", "lstm", "tune_best"}
    for name in ("bert", "lstm", "tune_best"):
        test = scores[name]["test"]
        assert {"accuracy", "macro_recall", "macro_f1", "f1_pn", "per_class", "confusion_matrix"} <= set(test)
        assert test["n"] == 12 and scores[name]["inference"]["tweets_per_s"] > 0
        predictions = (work / f"predictions/{name}.txt").read_text().splitlines()
        assert len(predictions) == 12 and set(predictions) <= {"0", "1", "2"}
        matrix = test["confusion_matrix"]
        assert sum(sum(row.values()) for row in matrix.values()) == 12
    assert scores["majority_baseline"]["test"]["macro_recall"] == pytest.approx(1 / 3)
    _run(["git", "add", "-A"], work, env)
    _run(["git", "commit", "-qm", "baseline"], work, env)

    out = _run(dvc + ["exp", "run", "-S", "learning_rate=3e-5"], work, env)
    ran = {stage for stage in ("download_data", "download_glove", "preprocess", "build_vocab", "train_bert",
                               "train_lstm", "tune", "evaluate") if f"Running stage '{stage}'" in out}
    assert ran == {"train_bert", "evaluate"}, out

    params_diff = json.loads(_run(dvc + ["params", "diff", "--json"], work, env))
    lr_diff = params_diff["params.yaml"]["learning_rate"]
    assert (lr_diff["old"], lr_diff["new"]) == (3e-3, 3e-5)
    changed = {path: _flat(diff) for path, diff in json.loads(_run(dvc + ["metrics", "diff", "--json"],
                                                                   work, env)).items()}
    evaluate_changes = {key.split(".new")[0].split(".old")[0] for key in changed.get("metrics/evaluate.json", {})}
    assert any(key.startswith("bert.test.") for key in evaluate_changes), changed
    # The LSTM was not retrained: its test figures are the same, only its measured speed moves.
    assert not [key for key in evaluate_changes if key.startswith("lstm.") and not key.startswith("lstm.inference")]
    assert "metrics/train_lstm.json" not in changed and "metrics/train_bert.json" in changed

    shown = json.loads(_run(dvc + ["exp", "show", "--json"], work, env))
    assert "3e-05" in json.dumps(shown) or "3e-5" in json.dumps(shown)

    _run(dvc + ["plots", "show", "-o", "plots_html"], work, env)
    html = (work / "plots_html/index.html").read_text()
    for plot in ("confusion_bert", "confusion_lstm", "train_bert_loss", "train_lstm_val_scores"):
        assert plot in html
