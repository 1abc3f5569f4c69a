"""The documented command lines on tiny data the tests write: src/training/train_model.py (LSTM),
scripts.train and scripts.tune (BERT, on a tiny local BERT), their config files, every stage's --help,
the one-logit binary case and the one-line errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.core.errors import PipelineError
from src.core.params import load_params
from src.recipes.lstm_config import parse_args
from src.recipes.lstm_run import run
from src.training.glove_loader import initialize_model_with_glove
from tests.fixtures import tiny_splits, write_mirror, write_tiny_bert, write_tweeteval

REPO = Path(__file__).resolve().parents[1]
STAGES = sorted(p.stem for p in (REPO / "stages").glob("*.py") if p.stem != "__init__")
TINY_LSTM = [
    "--embedding-dim",
    "8",
    "--hidden-dim",
    "8",
    "--n-layers",
    "1",
    "--batch-size",
    "8",
    "--learning-rate",
    "0.02",
    "--min-freq",
    "1",
    "--scheduler",
    "none",
    "--seed",
    "1",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def command(args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=600
    )


def lstm(argv: list[str]) -> dict:
    """The command line's run, in this process (the --help and error tests run it as a process)."""
    return run(parse_args([*TINY_LSTM, *argv]), initialize_model_with_glove)


def write_binary_csv(path: Path) -> Path:
    """Negative (0) and positive (1) tweets of the tiny set, one CSV with a split column."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "split"])
        for split, rows in tiny_splits().items():
            writer.writerows([text, label // 2, split] for text, label in rows if label != 1)
    return path


# ---- --help ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [["-m", f"stages.{name}"] for name in STAGES]
    + [
        [str(REPO / "src/training/train_model.py")],
        ["-m", "src.training.train_model"],
        ["-m", "scripts.train"],
        ["-m", "scripts.tune"],
    ],
    ids=lambda a: a[-1].rsplit("/", 1)[-1],
)
def test_help_prints_the_usage_and_does_nothing_else(args, tmp_path):
    result = command([*args, "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
    assert list(tmp_path.iterdir()) == []  # no params read, no file written, no training started


# ---- the LSTM command line ---------------------------------------------------------------------------
def test_lstm_command_line_on_tweeteval_layout_with_glove_writes_model_and_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SENTIMENT_MIRROR", str(write_mirror(tmp_path / "mirror")))
    write_tweeteval(tmp_path / "data", tiny_splits())
    metrics = lstm(
        [
            "--data-dir",
            "data",
            "--epochs",
            "4",
            "--use-glove",
            "--glove-corpus",
            "twitter.27B",
            "--glove-dim",
            "25d",
            "--embedding-dim",
            "25",
            "--early-stopping-patience",
            "5",
            "--output-dir",
            "models",
            "--checkpoint-dir",
            "checkpoints",
        ]
    )
    assert metrics["epochs"] == 4 and metrics["val"]["accuracy"] > 0.5
    assert {p.name for p in Path("models").iterdir()} >= {
        "best_model.pt",
        "model_config.json",
        "vocab.json",
        "training_history.json",
    }
    assert (Path("checkpoints") / "checkpoint_epoch_4.pt").is_file() and (
        Path("checkpoints") / "best_model.pt"
    ).is_file()
    config = json.loads(Path("models/model_config.json").read_text())
    assert config["label_names"] == ["negative", "neutral", "positive"] and config["output_dim"] == 3
    assert (Path("data/glove") / "glove.twitter.27B.25d.txt").is_file()  # fetched through the mirror


def test_binary_csv_trains_the_one_logit_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metrics = lstm(
        [
            "--data-dir",
            str(write_binary_csv(tmp_path / "binary.csv")),
            "--output-dim",
            "1",
            "--epochs",
            "6",
            "--output-dir",
            "m",
            "--checkpoint-dir",
            "m",
        ]
    )
    config = json.loads(Path("m/model_config.json").read_text())
    assert config["output_dim"] == 1 and config["label_names"] == ["0", "1"]
    assert metrics["epochs"] == 6 and set(metrics["val"]) == {"accuracy", "macro_recall"}
    assert 0.5 <= metrics["val"]["accuracy"] <= 1  # learning itself: the engine's one-logit test


def test_config_file_takes_the_documented_training_config_and_flags_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tweeteval(tmp_path / "data", tiny_splits())
    Path("config.json").write_text(
        json.dumps(
            {
                "model_config": {
                    "embedding_dim": 8,
                    "hidden_dim": 8,
                    "n_layers": 1,
                    "dropout": 0.3,
                    "bidirectional": True,
                },
                "training_config": {
                    "batch_size": 8,
                    "learning_rate": 0.001,
                    "epochs": 20,
                    "weight_decay": 1e-5,
                    "gradient_clip": 1.0,
                    "early_stopping_patience": 5,
                    "validation_split": 0.2,
                },
            }
        )
    )
    args = parse_args(["--data-dir", "data", "--config", "config.json", "--epochs", "1"])
    assert (args.epochs, args.batch_size, args.learning_rate, args.validation_split) == (1, 8, 0.001, 0.2)
    assert run(args)["epochs"] == 1
    Path("bad.json").write_text(json.dumps({"training_config": {"epochs": "many"}}))
    with pytest.raises(PipelineError, match="bad.json: epochs = 'many': expected a whole number"):
        parse_args(["--data-dir", "data", "--config", "bad.json"])


def test_processed_directory_with_a_built_vocabulary(tmp_path, monkeypatch):
    from src.data.preprocess import Split, write_split
    from src.data.vocab import Vocabulary

    monkeypatch.chdir(tmp_path)
    splits = tiny_splits()
    for name, rows in splits.items():
        write_split(f"processed/{name}.jsonl", Split([t for t, _ in rows], [y for _, y in rows]))
    Vocabulary.build(t for t, _ in splits["train"]).save("vocab/vocab.json")
    metrics = lstm(
        [
            "--data-dir",
            "processed",
            "--vocab-dir",
            "vocab",
            "--label-names",
            "neg",
            "neu",
            "pos",
            "--epochs",
            "1",
            "--output-dir",
            "m",
            "--checkpoint-dir",
            "m",
        ]
    )
    assert metrics["epochs"] == 1
    assert json.loads(Path("m/model_config.json").read_text())["label_names"] == ["neg", "neu", "pos"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--output-dim", "1"],
            "error: output_dim = 1 (one logit, binary cross-entropy) needs a two-class data set; "
            "data has 3 classes (negative, neutral, positive): set output_dim to 3",
        ),
        (["--output-dim", "2"], "error: output_dim = 2 but data has 3 classes"),
        (["--vocab-size", "10"], "error: vocab_size = 10 is smaller than the vocabulary"),
        (["--use-glove", "--glove-corpus", "6B", "--glove-dim", "301d"], "error: glove.dimension = '301d'"),
    ],
    ids=["output_dim_1", "output_dim_2", "vocab_size", "glove_dim"],
)
def test_bad_settings_are_one_error_line(extra, message, tmp_path):
    write_tweeteval(tmp_path / "data", tiny_splits())
    result = command([str(REPO / "src/training/train_model.py"), "--data-dir", "data", *TINY_LSTM, *extra], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


def test_data_that_is_no_data_set_is_one_error_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = command(["-m", "src.training.train_model", "--data-dir", "empty"], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: empty: not a data set; expected a directory")


# ---- BERT: scripts.train, scripts.tune and their config files ----------------------------------------
@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return str(write_tiny_bert(tmp_path_factory.mktemp("tiny-bert")))


def test_config_files_hold_the_recommended_hyperparameters_and_params_model_name():
    model = json.loads((REPO / "config/model_config.json").read_text())
    params = load_params(REPO / "params.yaml")
    recommended = {
        "num_epochs": 4,
        "learning_rate": 2e-5,
        "batch_size": 16,
        "weight_decay": 0.01,
        "warmup_ratio": 0.1,
        "dropout_prob": 0.1,
    }
    assert model == {**recommended, "model_name": params["model_name"]}
    tuning = json.loads((REPO / "config/hyperparameter_config.json").read_text())
    assert all(isinstance(values, list) for values in tuning["hyperparameters"].values())


def test_scripts_train_writes_the_documented_files(tiny_bert, tmp_path, monkeypatch):
    from scripts.train import main

    monkeypatch.chdir(tmp_path)
    write_tweeteval(tmp_path / "data", tiny_splits())
    Path("model_config.json").write_text(
        json.dumps({"model_name": tiny_bert, "num_epochs": 2, "learning_rate": 1e-3, "batch_size": 8, "max_length": 32})
    )
    main(["--data_dir", "data", "--output_dir", "models", "--config", "model_config.json"])
    names = {p.name for p in Path("models").iterdir()}
    assert {"best_model.pt", "checkpoint_epoch_1.pt", "checkpoint_epoch_2.pt", "training_history.json"} <= names
    history = json.loads(Path("models/training_history.json").read_text())
    assert len(history["train_loss"]) == len(history["val_accuracy"]) == 2


def test_scripts_tune_with_named_configurations(tiny_bert, tmp_path, monkeypatch):
    from scripts.tune import main

    monkeypatch.chdir(tmp_path)
    write_tweeteval(tmp_path / "data", tiny_splits())
    Path("hp.json").write_text(
        json.dumps(
            {
                "model_name": tiny_bert,
                "num_epochs": 1,
                "batch_size": 8,
                "max_length": 32,
                "hyperparameters": {
                    "config_1": {"learning_rate": 1e-3},
                    "config_2": {"learning_rate": 1e-4, "batch_size": 4},
                },
            }
        )
    )
    main(["--data_dir", "data", "--output_dir", "tuning_results", "--config", "hp.json"])
    results = json.loads(Path("tuning_results/tuning_results.json").read_text())
    assert len(results["trials"]) == 2
    assert {t["hyperparameters"]["learning_rate"] for t in results["trials"]} == {1e-3, 1e-4}
    assert Path("tuning_results/config_0").is_dir() and Path("tuning_results/config_1").is_dir()


def test_scripts_config_errors_are_one_line(tmp_path):
    write_tweeteval(tmp_path / "data", tiny_splits())
    (tmp_path / "c.json").write_text(json.dumps({"num_epochs": 0}))
    result = command(["-m", "scripts.train", "--data_dir", "data", "--config", "c.json"], tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: c.json: num_epochs = 0: expected a whole number >= 1"
