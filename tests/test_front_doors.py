"""One validation for every front door: params.yaml, the guides' JSON config files and the LSTM command
line's flags go through the same definitions (src/core/params_schema.py). Each row is a bad value at a
real entry point (scripts.train, scripts.tune, src/training/train_model.py), answered by one `error:`
line naming the file and key or the flag as written, before any data is read or anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.core.json_files import MAX_CONFIG_BYTES
from src.core.params import load_params
from src.recipes.bert_config import BertConfig
from src.recipes.lstm_config import LstmConfig, parse_args

REPO = Path(__file__).resolve().parents[1]


def one_error_line(capsys, main, argv: list[str]) -> str:
    """Run a command line's main in this process; the one `error:` line it ends with (exit 1)."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 1 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


BERT_CONFIG_ROWS = {
    "nan_learning_rate": ('{"learning_rate": NaN}', "c.json: learning_rate = nan: expected a finite number > 0"),
    "infinite_max_length": ('{"max_length": 1e999}', "c.json: max_length = inf: expected a whole number >= 8"),
    "label_names_a_string": ('{"label_names": "abc"}', "c.json: label_names = 'abc': expected a list or null"),
    "dropout_out_of_range": ('{"dropout_prob": 1.5}', "c.json: dropout_prob = 1.5: expected a number < 1"),
    "batch_size_huge": ('{"batch_size": 100000000}', "c.json: batch_size = 100000000: expected a whole number <="),
    "oversized_integer": ('{"seed": 1' + "0" * 40 + "}", "c.json: seed = 1" + "0" * 40),
    "boolean_for_a_number": ('{"num_epochs": true}', "c.json: num_epochs = True: expected a whole number >= 1"),
    "unknown_device": ('{"device": "tpu"}', "c.json: device = 'tpu': expected auto, cpu, cuda or cuda:N"),
    "unknown_key": ('{"learning_rat": 1e-5}', "c.json: unknown key learning_rat: expected one of"),
    "deeply_nested": ('{"a": ' * 100_000 + "1" + "}" * 100_000, "c.json: nested too deeply to read"),
    "huge_file": (" " * (MAX_CONFIG_BYTES + 1) + "{}", "c.json: more than 1 MB; expected a small JSON file"),
}


@pytest.mark.parametrize("text, expected", BERT_CONFIG_ROWS.values(), ids=BERT_CONFIG_ROWS.keys())
def test_scripts_train_config_file(text, expected, tmp_path, monkeypatch, capsys):
    from scripts.train import main

    monkeypatch.chdir(tmp_path)
    Path("c.json").write_text(text)
    line = one_error_line(capsys, main, ["--data_dir", "missing", "--config", "c.json"])
    assert line.startswith(f"error: {expected}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]  # nothing written


TUNE_CONFIG_ROWS = {
    "grid_of_strings": ({"learning_rate": "2e-5"}, "hyperparameters = {'learning_rate': '2e-5'}: expected the values"),
    "grid_unknown_name": ({"learning_rat": [1e-5]}, "hyperparameters = {'learning_rat': [1e-05]}: expected the values"),
    "empty_list": ([], "hyperparameters = []: expected the values to try"),
    "named_configuration_not_an_object": ({"config_1": 3}, "hyperparameters = {'config_1': 3}: expected the values"),
}


@pytest.mark.parametrize("grid, expected", TUNE_CONFIG_ROWS.values(), ids=TUNE_CONFIG_ROWS.keys())
def test_scripts_tune_grid(grid, expected, tmp_path, monkeypatch, capsys):
    from scripts.tune import main

    monkeypatch.chdir(tmp_path)
    Path("h.json").write_text(json.dumps({"hyperparameters": grid}))
    assert one_error_line(capsys, main, ["--data_dir", "missing", "--config", "h.json"]).startswith(
        f"error: h.json: {expected}"
    )


def test_scripts_tune_negative_trial_count_names_n_trials(tmp_path, monkeypatch, capsys):
    from scripts.tune import main

    monkeypatch.chdir(tmp_path)
    Path("h.json").write_text(json.dumps({"n_trials": -1, "hyperparameters": {"learning_rate": [1e-5]}}))
    line = one_error_line(capsys, main, ["--data_dir", "missing", "--config", "h.json"])
    assert line == "error: h.json: n_trials = -1: expected a whole number >= 1"


LSTM_FLAG_ROWS = {
    "nan_learning_rate": (["--learning-rate", "nan"], "--learning-rate = nan: expected a finite number > 0"),
    "hidden_units_huge": (["--hidden-dim", "100000"], "--hidden-dim = 100000: expected a whole number <= 16384"),
    "layers_huge": (["--n-layers", "1000"], "--n-layers = 1000: expected a whole number <= 64"),
    "dropout_out_of_range": (["--dropout", "1.5"], "--dropout = 1.5: expected a number < 1"),
    "batch_size_zero": (["--batch-size", "0"], "--batch-size = 0: expected a whole number >= 1"),
    "max_length_huge": (["--max-length", "100000"], "--max-length = 100000: expected a whole number <= 4096"),
    "unknown_device": (["--device", "tpu"], "--device = 'tpu': expected auto, cpu, cuda or cuda:N"),
}


@pytest.mark.parametrize("flags, expected", LSTM_FLAG_ROWS.values(), ids=LSTM_FLAG_ROWS.keys())
def test_lstm_command_line_flags(flags, expected, tmp_path, monkeypatch, capsys):
    from src.training.train_model import main

    monkeypatch.chdir(tmp_path)
    assert one_error_line(capsys, main, ["--data-dir", "missing", *flags]) == f"error: {expected}"
    assert list(tmp_path.iterdir()) == []  # nothing written


LSTM_CONFIG_ROWS = {
    "label_names_a_string": ({"label_names": "abc"}, "cfg.json: label_names = 'abc': expected a list or null"),
    "nan_in_a_section": ({"training_config": {"learning_rate": float("nan")}}, "cfg.json: learning_rate = nan"),
    "hidden_units_huge": ({"model_config": {"hidden_dim": 10**6}}, "cfg.json: hidden_dim = 1000000: expected a"),
    "glove_dim_a_number": ({"glove_dim": 25}, "cfg.json: glove_dim = 25: expected a dimension such as 25d or 25"),
}


@pytest.mark.parametrize("config, expected", LSTM_CONFIG_ROWS.values(), ids=LSTM_CONFIG_ROWS.keys())
def test_lstm_config_file(config, expected, tmp_path, monkeypatch, capsys):
    from src.training.train_model import main

    monkeypatch.chdir(tmp_path)
    Path("cfg.json").write_text(json.dumps(config))
    assert one_error_line(capsys, main, ["--data-dir", "missing", "--config", "cfg.json"]).startswith(
        f"error: {expected}"
    )


def test_a_flag_overrides_a_bad_config_value_and_is_named_itself(tmp_path, monkeypatch):
    """The value that counts is validated, named where it came from: the flag wins over the file."""
    monkeypatch.chdir(tmp_path)
    Path("cfg.json").write_text(json.dumps({"hidden_dim": 10**6, "epochs": 3}))
    config = parse_args(["--data-dir", "d", "--config", "cfg.json", "--hidden-dim", "16"])
    assert (config.hidden_dim, config.epochs) == (16, 3)


def test_the_stage_config_is_the_command_line_config():
    """train_lstm builds LstmConfig from params.yaml directly; the command line with the same values
    (as the stage once passed them) builds the same config."""
    from stages.train_lstm import PATHS, lstm_config

    params = load_params(REPO / "params.yaml")
    lstm = params["lstm"]
    argv = ["--data-dir", PATHS["data_dir"], "--vocab-dir", PATHS["vocab_dir"], "--label-names"]
    argv += [*params["data"]["label_names"], "--output-dir", PATHS["output_dir"]]
    argv += ["--checkpoint-dir", PATHS["checkpoint_dir"], "--metrics-file", PATHS["metrics_file"]]
    argv += ["--plots-file", PATHS["plots_file"], "--live-dir", PATHS["live_dir"], "--monitor", "val_macro_recall"]
    for key in ("embedding_dim", "hidden_dim", "n_layers", "dropout", "max_length", "batch_size", "learning_rate"):
        argv += [f"--{key.replace('_', '-')}", str(lstm[key])]
    for key in ("epochs", "weight_decay", "seed"):
        argv += [f"--{key.replace('_', '-')}", str(lstm[key])]
    argv += ["--gradient-clip", str(lstm["gradient_clip"] or 0)]
    argv += ["--early-stopping-patience", str(lstm["early_stopping_patience"] or 0)]
    argv += ["--scheduler", lstm["scheduler"] or "none", "--class-weights", lstm["class_weights"] or "none"]
    argv += ["--timeout-s", str(params["distributed"]["timeout_s"])]
    argv += ["--bidirectional" if lstm["bidirectional"] else "--no-bidirectional"]
    argv += ["--use-glove"] * lstm["use_glove"] + ["--freeze-embeddings"] * lstm["freeze_embeddings"]
    assert lstm_config(params) == parse_args(argv)
    assert isinstance(lstm_config(params), LstmConfig)


def test_bert_config_from_params_and_from_the_guides_config_file():
    params = load_params(REPO / "params.yaml")
    config = BertConfig.from_params(params)
    assert config.learning_rate == params["learning_rate"] and config.device == params["bert"]["device"]
    fingerprint = config.fingerprint_params()
    assert fingerprint["bert"] == params["bert"] and fingerprint["learning_rate"] == params["learning_rate"]
    from_file, _ = BertConfig.from_file(REPO / "config/model_config.json")
    guide = json.loads((REPO / "config/model_config.json").read_text())
    assert from_file.hyperparameters() == {k: guide[k] for k in from_file.hyperparameters()}


def test_the_error_is_one_line_from_a_real_process(tmp_path):
    (tmp_path / "c.json").write_text('{"learning_rate": NaN}')
    result = subprocess.run(
        [sys.executable, "-m", "scripts.train", "--data_dir", "data", "--config", "c.json"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: c.json: learning_rate = nan: expected a finite number > 0"
