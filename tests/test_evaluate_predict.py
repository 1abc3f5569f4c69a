"""The test report, the evaluate stage and `python -m src.predict` on tiny trained models."""

import errno
import json
import os
import shutil

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from src.core.cli import run_stage
from src.core.errors import PipelineError
from src.data.preprocess import normalize_tweet, read_split
from src.evaluation import predict_proba
from src.models import training
from src.models.bert_data import TokenizedTweets, make_bert_loader
from src.models.bert_model import load_tokenizer
from src.models.loading import load_model
from src.predict import main as predict_main
from src.scoring.metrics import detailed_metrics
from src.scoring.probabilities import parse_probabilities
from stages import evaluate, train_lstm
from stages.evaluate import majority_baseline
from tests.fixtures import tiny_splits, write_tiny_bert

LABELS = ["negative", "neutral", "positive"]


def test_report_has_f1_pn_per_class_and_confusion_matrix():
    labels = [0, 0, 1, 1, 2, 2, 2, 1]
    predictions = [0, 1, 1, 1, 2, 0, 2, 2]
    report = detailed_metrics(labels, predictions, LABELS)
    # SemEval-2017 4A: the mean F1 of positive and negative only
    assert report["f1_pn"] == pytest.approx(np.mean(f1_score(labels, predictions, labels=[0, 2], average=None)))
    assert report["per_class"]["neutral"]["recall"] == pytest.approx(2 / 3)
    assert report["per_class"]["positive"]["support"] == 3
    assert report["confusion_matrix"]["positive"] == {"negative": 1, "neutral": 0, "positive": 2}
    assert report["n"] == 8


def test_report_without_positive_and_negative_classes_has_no_f1_pn():
    assert "f1_pn" not in detailed_metrics([0, 1], [0, 1], ["spam", "ham"])


def test_majority_baseline_predicts_the_most_frequent_train_class():
    baseline = majority_baseline([1, 1, 2, 0, 1], [0, 1, 2, 1], LABELS)
    assert baseline["predicts"] == "neutral"
    assert baseline["accuracy"] == 0.5 and baseline["macro_recall"] == pytest.approx(1 / 3)


def test_length_sorted_batches_give_each_text_its_own_row(workdir):  # noqa: F811
    train_lstm.main(workdir)
    trained = load_model("models/lstm", "cpu")
    texts = ["so happy right now", "bad", "the game is on friday at the stadium with everyone", "love it", ""]
    batched = predict_proba(trained, texts, batch_size=2, device="cpu")
    one_by_one = np.concatenate([predict_proba(trained, [t], batch_size=1, device="cpu") for t in texts])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)


def test_predict_cli_normalises_like_training_and_keeps_input_lines(workdir, tmp_path, capsys):  # noqa: F811
    train_lstm.main(workdir)
    predict_main(["--model", "models/lstm", "@someone so happy http://t.co/x", "@user so happy"])
    first, second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert first["text"] == "@someone so happy http://t.co/x"  # the input as given...
    assert first["probabilities"] == second["probabilities"]  # ...classified as the training data was
    assert first["label"] == LABELS[first["label_id"]]
    assert sum(first["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)

    # --model-dir, src.evaluation's spelling, names the same model
    predict_main(["--model-dir", "models/lstm", "@someone so happy http://t.co/x"])
    assert json.loads(capsys.readouterr().out)["probabilities"] == first["probabilities"]

    (tmp_path / "tweets.txt").write_text("what a great day\n\nworst day ever\n", encoding="utf-8")
    predict_main(["--model", "models/lstm", "--input", str(tmp_path / "tweets.txt")])
    assert [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()] == [
        "what a great day",
        "",
        "worst day ever",
    ]


def test_predict_cli_with_the_bert_export(tmp_path, capsys):
    model_dir = str(write_tiny_bert(tmp_path / "tiny-bert"))
    tokenizer = load_tokenizer(model_dir)
    splits = {
        s: TokenizedTweets([normalize_tweet(t) for t, _ in rows], [y for _, y in rows], tokenizer, 32)
        for s, rows in tiny_splits().items()
    }
    training.train_model(
        make_bert_loader(splits["train"], 8, shuffle=True),
        make_bert_loader(splits["val"], 16, shuffle=False),
        tmp_path / "bert",
        num_epochs=1,
        device="cpu",
        model_name=model_dir,
        tokenizer=tokenizer,
        progress=False,
    )
    predict_main(["--model", str(tmp_path / "bert"), "what a great day", "i hate this"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(set(row["probabilities"]) == set(LABELS) for row in rows)
    exported = torch.load(tmp_path / "bert" / "best_model.pt", weights_only=True)
    assert exported["epoch"] == 1


def test_predict_cli_on_a_directory_without_a_model_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["--model", str(tmp_path), "hello"])
    assert exit_info.value.code == 1
    assert "not a trained model directory" in capsys.readouterr().err


def test_an_lstm_directory_from_an_older_train_lstm_is_a_clear_error(workdir):  # noqa: F811
    train_lstm.main(workdir)
    config_path = train_lstm.MODEL_DIR / "model_config.json"
    config = json.loads(config_path.read_text())
    del config["label_names"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(PipelineError, match=r"model_config.json: no label_names .*dvc repro train_lstm"):
        load_model("models/lstm", "cpu")


def _snapshot(paths) -> dict[str, bytes]:
    """{file: content} of every file at or under ``paths``."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {str(f): f.read_bytes() for f in files}


def test_evaluate_scores_one_model_and_a_failed_run_leaves_the_previous_outputs_whole(workdir, capsys):  # noqa: F811
    train_lstm.main(workdir)
    evaluate.main(workdir, "lstm")
    evaluate.main(workdir, "majority")
    lstm, majority = (json.load(open(f"metrics/{name}/test.json")) for name in ("lstm", "majority"))
    assert lstm.keys() == majority.keys() and lstm["n"] == 60  # one layout: rows line up in `dvc metrics diff`
    assert set(lstm) == {"accuracy", "macro_recall", "macro_f1", "f1_pn", "n"}  # headline figures only...
    details = json.load(open("predictions/lstm/details_test.json"))  # ...the details beside the predictions
    assert set(details) == {"per_class", "confusion_matrix"} and details["per_class"]["positive"]["support"] > 0
    assert sum(map(sum, (row.values() for row in details["confusion_matrix"].values()))) == 60
    assert not {"inference", "tweets_per_s", "seconds"} & set(lstm)  # timing is not a metric...
    assert json.load(open("predictions/lstm/inference.json"))["tweets_per_s"] > 0  # ...it is kept beside
    assert len(open("predictions/lstm/test.txt").read().splitlines()) == 60
    assert {p.name for p in evaluate.PREDICTIONS_DIR.joinpath("majority").iterdir()} == {
        "test.txt",
        "probs_test.csv",
        "probs_val.csv",
        "details_test.json",
    }
    assert open("plots/confusion/lstm.csv").readline() == "actual,predicted\n"
    assert not (evaluate.PREDICTIONS_DIR / "majority/inference.json").exists()

    previous = _snapshot(evaluate.outputs("lstm").values())
    shutil.rmtree("models/lstm")
    open("params.yaml", "w").write(json.dumps(workdir))  # JSON is YAML: run_stage validates it
    with pytest.raises(SystemExit) as exit_info:
        run_stage(lambda params: evaluate.main(params, "lstm"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: models/lstm: not found (run `dvc repro train_lstm` or `dvc pull train_lstm` first)"
    # the previous run's set stays whole (dvc repro removes a stage's outputs before it runs, so there
    # they never pass for this run's)
    assert _snapshot(evaluate.outputs("lstm").values()) == previous
    assert evaluate.outputs("majority")["metrics"].exists()  # other models' outputs are not touched


@pytest.mark.parametrize("failing_write", [1, 3, 6])
def test_a_full_disk_while_evaluate_writes_leaves_the_previous_set_whole(workdir, capsys, monkeypatch, failing_write):  # noqa: F811
    evaluate.main(workdir, "majority")
    previous = _snapshot(evaluate.outputs("majority").values())
    fsyncs = {"n": 0}
    real_fsync = os.fsync

    def fsync_until_full(fd):
        fsyncs["n"] += 1
        if fsyncs["n"] == failing_write:  # the Nth of the set's six files finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_until_full)
    open("params.yaml", "w").write(json.dumps(workdir))
    with pytest.raises(SystemExit) as exit_info:
        run_stage(lambda params: evaluate.main(params, "majority"))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: metrics/majority/macro_recall.json, metrics/majority/test.json, predictions/majority, "
        "plots/confusion/majority.csv, plots/reliability/majority.json: no space left on device while writing "
        "the new set; the previous outputs are intact. Free space and run again"
    ]
    assert _snapshot(evaluate.outputs("majority").values()) == previous
    for directory in ("metrics/majority", "predictions", "plots/confusion", "plots/reliability"):  # nothing staged left
        assert not [p for p in os.listdir(directory) if p.endswith(".tmp")], directory


def test_evaluate_writes_test_and_val_probabilities_in_split_order(workdir):  # noqa: F811
    train_lstm.main(workdir)
    evaluate.main(workdir, "lstm")
    evaluate.main(workdir, "majority")
    trained = load_model("models/lstm", "cpu")
    for split in ("test", "val"):
        texts = read_split(f"data/processed/{split}.jsonl").texts
        text = open(f"predictions/lstm/probs_{split}.csv").read()
        lines = text.splitlines()
        assert lines[0] == "negative,neutral,positive" and len(lines) == len(texts) + 1
        assert all(len(cell.split(".")[1]) == 6 for cell in lines[1].split(","))  # 6 decimals
        written = parse_probabilities(text, LABELS, split)
        # the same rows as scoring each tweet on its own, in the split's order
        np.testing.assert_allclose(written, predict_proba(trained, texts, batch_size=7, device="cpu"), atol=1e-6)
        np.testing.assert_allclose(written.sum(axis=1), 1.0, atol=1e-5)
        if split == "test":  # test.txt is the argmax of the same probabilities
            assert [int(x) for x in open("predictions/lstm/test.txt").read().split()] == written.argmax(axis=1).tolist()
        # the majority baseline: train's class prior on every row, its argmax the class it predicts
        prior = parse_probabilities(open(f"predictions/majority/probs_{split}.csv").read(), LABELS, split)
        train = read_split("data/processed/train.jsonl").labels
        expected = np.bincount(train, minlength=3) / len(train)
        np.testing.assert_allclose(prior, np.tile(expected, (len(texts), 1)), atol=1e-6)
    majority = {int(x) for x in open("predictions/majority/test.txt").read().split()}
    assert majority == {int(prior.argmax(axis=1)[0])}


def test_evaluate_scores_a_one_logit_model_as_training_validated_it(workdir):  # noqa: F811
    """A two-class model with one logit (the LSTM training guide's output_dim 1, trained by its command line
    into models/lstm): evaluate writes one probability column per class, and its figures are training's."""
    from src.data.preprocess import Split, write_split
    from src.recipes.lstm_config import parse_args
    from src.recipes.lstm_run import run

    for name in ("train", "val", "test"):  # negative (0) and positive (1) only
        split = read_split(f"data/processed/{name}.jsonl")
        rows = [(text, label // 2) for text, label in zip(split.texts, split.labels) if label != 1]
        write_split(f"data/processed/{name}.jsonl", Split([t for t, _ in rows], [y for _, y in rows]))
    names = ["negative", "positive"]
    workdir["data"]["label_names"] = names
    tiny = "--embedding-dim 8 --hidden-dim 8 --n-layers 1 --batch-size 8 --learning-rate 0.02 --min-freq 1 --seed 1"
    trained = run(
        parse_args(
            [*tiny.split(), "--data-dir", "data/processed", "--label-names", *names, "--output-dim", "1"]
            + ["--epochs", "2", "--scheduler", "none", "--output-dir", "models/lstm", "--checkpoint-dir", "models/lstm"]
        )
    )
    assert json.load(open("models/lstm/model_config.json"))["output_dim"] == 1

    evaluate.main(workdir, "lstm")
    val = read_split("data/processed/val.jsonl")
    text = open("predictions/lstm/probs_val.csv").read()
    assert text.splitlines()[0] == "negative,positive"
    probabilities = parse_probabilities(text, names, "val")
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == np.array(val.labels)))
    assert accuracy == pytest.approx(trained["val"]["accuracy"])
    test = read_split("data/processed/test.jsonl")
    predicted = [int(x) for x in open("predictions/lstm/test.txt").read().split()]
    report = json.load(open("metrics/lstm/test.json"))
    assert report["accuracy"] == pytest.approx(float(np.mean(np.array(predicted) == np.array(test.labels))))


def test_a_damaged_probabilities_file_is_a_clear_error():
    with pytest.raises(PipelineError, match=r"^p.csv: header \['a', 'b'\]: expected the classes"):
        parse_probabilities("a,b\n0.5,0.5\n", LABELS, "p.csv")
    with pytest.raises(PipelineError, match=r"^p.csv:3: expected 3 probabilities between 0 and 1$"):
        parse_probabilities("negative,neutral,positive\n0.2,0.3,0.5\n0.2,x,0.5\n", LABELS, "p.csv")
    # columns come back in label-id order whatever the header's order
    np.testing.assert_array_equal(
        parse_probabilities("positive,negative,neutral\n0.7,0.1,0.2\n", LABELS, "p"), [[0.1, 0.2, 0.7]]
    )


def test_evaluate_command_line_names_the_models(tmp_path, monkeypatch):
    assert evaluate.parse_model(["tune_best"]) == "tune_best"
    assert evaluate.parse_model(["bert_seed43"]) == "bert_seed43"  # train_bert_seed@43's model
    for name in ("gpt", "bert_seed", "bert_seed4x", "bert_seed1/../.."):
        with pytest.raises(SystemExit):
            evaluate.parse_model([name])
    # the seed member's directory and stage, when it is missing:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match=r"^models/bert_seed43: not found \(run `dvc repro train_bert_seed@43`"):
        evaluate.model_dir("bert_seed43")


@pytest.mark.parametrize("best_trial", ['"0/../../outside"', "true", "-1", "null"])
def test_a_pulled_tuning_results_cannot_point_evaluate_outside_models_tune(tmp_path, monkeypatch, best_trial):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models/tune").mkdir(parents=True)
    (tmp_path / "models/tune/tuning_results.json").write_text(f'{{"best_trial": {best_trial}}}')
    with pytest.raises(
        PipelineError, match=r"models/tune/tuning_results.json: best_trial = .*: expected a trial number"
    ):
        evaluate.model_dir("tune_best")
