"""stages/train_lstm.py and src/evaluation.py end to end on a tiny processed dataset in a temp dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.core.errors import PipelineError
from src.data.preprocess import Split, read_split, write_split
from src.data.vocab import Vocabulary
from src.evaluation import main as evaluation_main
from src.evaluation import predict_proba
from src.models.loading import load_model
from src.models.lstm_data import encode, make_loader
from src.models.lstm_model import LSTMClassifier
from stages import train_lstm
from tests.fixtures import TINY_LSTM, synthetic_split  # noqa: F401 (importable from here, as before)


def test_stage_writes_model_metrics_and_plots(workdir, capsys):
    train_lstm.main(workdir)
    metrics = json.load(open("metrics/lstm/train.json"))
    assert metrics["val"]["macro_recall"] > 0.7
    assert set(metrics) == {"best_epoch", "epochs", "val", "parameters"}  # the layout of metrics/bert/train.json
    assert set(metrics["val"]) == {"accuracy", "macro_recall"}
    # the curves: DVCLive's rows, one per epoch for every validation figure, one per step for the rest
    live = train_lstm.LIVE_DIR / "plots/metrics"
    epochs = metrics["epochs"]
    for figure in ("loss", "accuracy", "macro_recall", "macro_f1"):
        assert len(_tsv(live / f"val/{figure}.tsv")) == epochs, figure
    assert len(_tsv(live / "train/learning_rate.tsv")) == len(_tsv(live / "train/loss.tsv")) > epochs
    # the model alone: the checkpoints stayed in .resume/train_lstm/<key>/, removed once the run finished
    assert sorted(p.name for p in train_lstm.MODEL_DIR.iterdir()) == [
        "best_model.pt",
        "model_config.json",
        "training_history.json",
        "vocab.json",
    ]
    assert not Path(".resume").exists()

    evaluation_main(["--model-dir", "models/lstm", "--split", "val"])
    scores = json.loads(capsys.readouterr().out)
    # Scoring the saved best model on val reproduces the best epoch's val metrics.
    assert scores["macro_recall"] == pytest.approx(metrics["val"]["macro_recall"])
    assert scores["accuracy"] == pytest.approx(metrics["val"]["accuracy"])


def test_stage_is_deterministic(workdir):
    train_lstm.main(workdir)
    first = json.load(open("metrics/lstm/train.json"))
    train_lstm.main(workdir)
    second = json.load(open("metrics/lstm/train.json"))
    assert first == second


def test_embedding_dim_mismatch_is_a_clear_stage_error(workdir):
    workdir["lstm"]["embedding_dim"] = 25
    with pytest.raises(PipelineError, match=r"lstm.embedding_dim = 25 .* 8-dimensional"):
        train_lstm.main(workdir)


def test_without_glove_the_matrix_is_not_needed(workdir, tmp_path):
    (tmp_path / "data/vocab/embeddings.npy").unlink()
    workdir["lstm"].update(use_glove=False, embedding_dim=6, epochs=1, class_weights=None, scheduler=None)
    train_lstm.main(workdir)
    assert json.load(open("metrics/lstm/train.json"))["epochs"] == 1


def test_a_huge_line_costs_lstm_max_length_tokens_in_training_evaluation_and_prediction(workdir, monkeypatch):
    huge = "so good " * 125_000  # 1 MB, 250,000 tokens
    train = read_split("data/processed/train.jsonl")
    write_split("data/processed/train.jsonl", Split([*train.texts, huge], [*train.labels, 2]))
    workdir["lstm"].update(epochs=1, max_length=16)
    widths = []
    forward = LSTMClassifier.forward

    def recording_forward(self, input_ids, *args, **kwargs):
        widths.append(input_ids.shape[1])
        return forward(self, input_ids, *args, **kwargs)

    monkeypatch.setattr(LSTMClassifier, "forward", recording_forward)
    train_lstm.main(workdir)
    assert max(widths) == 16  # the huge tweet was trained on, cut to 16 tokens

    trained = load_model("models/lstm", "cpu")
    assert json.load(open("models/lstm/model_config.json"))["max_length"] == 16  # recorded with the model
    assert trained.encode([huge, "so good", ""]).lengths() == [16, 2, 1]
    widths.clear()
    probabilities = predict_proba(trained, [huge, "good"], batch_size=2, device="cpu")
    assert probabilities.shape == (2, 3) and widths == [16]

    vocab = Vocabulary.load("data/vocab/vocab.json")
    batch = next(iter(make_loader([huge, "good"], [2, 2], vocab, 2, shuffle=False, max_length=16)))
    assert batch["input_ids"].shape == (2, 16) and batch["lengths"].tolist() == [16, 1]
    # 10 MB without a space: only the first 16 x 64 characters are tokenised
    assert encode(vocab, "ab" * 5_000_000, 16) == encode(vocab, "ab" * 512, 16)


def _tsv(path) -> list[dict]:
    header, *rows = open(path).read().splitlines()
    return [dict(zip(header.split("\t"), map(float, row.split("\t")))) for row in rows]


def test_stage_logs_every_step_and_epoch_with_dvclive_while_it_trains(workdir, monkeypatch):
    """dvclive/train_lstm (declared in dvc.yaml): a loss row per optimizer step, a validation row per
    epoch, and metrics.json rewritten as it goes, so `dvc exp show` / `dvc plots` see a running stage."""
    from src.training.live import DVCLiveLog

    seen = []  # metrics.json as `dvc exp show` would read it right after each epoch
    log_epoch = DVCLiveLog.log_epoch

    def spy(self, step, epoch, metrics):
        log_epoch(self, step, epoch, metrics)
        seen.append(json.loads((self.directory / "metrics.json").read_text()))

    monkeypatch.setattr(DVCLiveLog, "log_epoch", spy)
    train_lstm.main(workdir)

    trained = json.load(open("models/lstm/training_history.json"))  # the engine's per-epoch lists
    history = {"val_loss": trained["val_losses"], "val_macro_recall": trained["val_macro_recalls"]}
    epochs = len(trained["val_losses"])
    plots = train_lstm.LIVE_DIR / "plots/metrics"
    steps = _tsv(plots / "train/loss.tsv")
    per_epoch = len(steps) // epochs
    assert [row["step"] for row in steps] == list(range(1, epochs * per_epoch + 1)) and per_epoch > 1
    assert _tsv(plots / "epoch.tsv") == [{"step": e * per_epoch, "epoch": e} for e in range(1, epochs + 1)]
    for figure in ("loss", "macro_recall"):
        rows = _tsv(plots / f"val/{figure}.tsv")
        assert [row[figure] for row in rows] == pytest.approx(history[f"val_{figure}"])
    assert [(m["epoch"], m["step"]) for m in seen] == [(e, e * per_epoch) for e in range(1, epochs + 1)]
    assert seen[0]["val"]["macro_recall"] == pytest.approx(history["val_macro_recall"][0])
    final = json.loads((train_lstm.LIVE_DIR / "metrics.json").read_text())
    assert final["step"] == epochs * per_epoch and final["train"]["loss"] == pytest.approx(steps[-1]["loss"])
    assert "timestamp" not in open(plots / "train/loss.tsv").readline()  # equal runs write equal files


def test_the_engine_does_not_import_dvclive_unless_a_stage_logs():
    import subprocess
    import sys

    code = (
        "import sys, src.training.trainer, src.models.training, src.training.live; "
        "assert 'dvclive' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
