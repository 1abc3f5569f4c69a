"""The two scripts in examples/ run as documented, on tiny data (an offline GloVe mirror, a tiny local BERT)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures import tiny_splits, write_mirror, write_tiny_bert, write_tweeteval

REPO = Path(__file__).resolve().parents[1]


def run_example(name: str, args: list[str], cwd: Path, **env) -> dict:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_lstm_with_glove_example(tmp_path):
    write_tweeteval(tmp_path / "data", tiny_splits())
    out = run_example(
        "train_lstm_glove.py",
        ["--data-dir", "data", "--epochs", "3", "--hidden-dim", "8"],
        tmp_path,
        SENTIMENT_MIRROR=str(write_mirror(tmp_path / "mirror")),
    )
    assert out["epochs_completed"] == 3 and out["glove_vocab_coverage"] > 0.5
    assert (tmp_path / "examples_output/lstm/best_model.pt").is_file()
    assert (tmp_path / "examples_output/glove/glove.twitter.27B.25d.txt").is_file()
    assert not (tmp_path / "data/glove").exists()  # the download_glove stage's output folder stays its own


def test_bert_finetune_and_tune_example(tmp_path):
    write_tweeteval(tmp_path / "data", tiny_splits())
    model = write_tiny_bert(tmp_path / "tiny-bert")
    out = run_example(
        "bert_finetune_and_tune.py", ["--data-dir", "data", "--model-name", str(model), "--max-length", "32"], tmp_path
    )
    assert len(out["finetune_val_accuracy"]) == 1 and out["best_hyperparameters"]["learning_rate"] in (2e-5, 5e-5)
    assert (tmp_path / "examples_output/bert/finetune/training_history.json").is_file()
    assert (tmp_path / "examples_output/bert/tune/tuning_results.json").is_file()
