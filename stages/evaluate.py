"""evaluate: one model on test -> metrics/<model>/, predictions/<model>/, plots/{confusion,reliability}/<model>.*.

    python -m stages.evaluate bert        # bert | lstm | tune_best | tfidf | ensemble | majority | bert_seed<N>

dvc.yaml runs it once per model (``evaluate@bert`` ...), each stage reading only its own model, so an
experiment that re-trains BERT re-scores BERT alone and the other models' rows in `dvc metrics diff`
do not move. Only scoring happens here: the models were selected on validation by train_bert,
train_lstm and tune. ``majority`` (always the most frequent train class) is the floor every model
must clear. Inference speed goes to predictions/<model>/inference.json, not to the metrics: timing
is noise in a review's diff. Beside test.txt go the per-tweet class probabilities of test and
validation, predictions/<model>/probs_test.csv and probs_val.csv (src/scoring/probabilities.py): what the
review's calibration and an ensemble read. The majority baseline's rows are its train class prior
(the share of each class in train), the same row for every tweet: a probability, unlike a one-hot
row, and its argmax is the class it predicts.

The one DVC metric per model is metrics/<model>/macro_recall.json, ``{"<model>": {"test": .., "val": ..}}``:
TweetEval's official figure on test and on validation, keys unique across models so that `dvc exp show`
names its columns ``bert.test``, ``lstm.val``... and fits a terminal. metrics/<model>/test.json holds
every test figure (accuracy, macro-F1, F1^PN), committed but not a DVC metric. The plots: the test
confusion matrix (plots/confusion/<model>.csv, one row per tweet) and the reliability diagram of the
test probabilities (plots/reliability/<model>.json, one row per non-empty bin of the top probability).
"""

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from src.core.atomic import atomic_open, replace_together, write_json
from src.core.cli import run_stage
from src.core.errors import DataError, PipelineError
from src.core.runtime import explain_out_of_memory, use_all_cpu_cores
from src.data.preprocess import read_split
from src.evaluation import predict_proba, score_texts
from src.models.loading import load_model
from src.scoring.metrics import detailed_metrics
from src.scoring.probabilities import probabilities_file, read_probabilities, write_probabilities
from src.scoring.significance import reliability_bins

DATA_DIR = Path("data/processed")
MODEL_DIRS = {
    "bert": Path("models/bert"),
    "lstm": Path("models/lstm"),
    "tune_best": Path("models/tune"),
    "tfidf": Path("models/tfidf"),
    "ensemble": Path("models/ensemble"),
}
MODELS = (*MODEL_DIRS, "majority")
# train_bert's recipe with another seed (stage train_bert_seed@N): models/bert_seed<N>, an ensemble member
SEED_MEMBER = re.compile(r"bert_seed(\d{1,10})")
METRICS_DIR = Path("metrics")  # <model>/macro_recall.json: the DVC metric; <model>/test.json: every test figure
PREDICTIONS_DIR = Path("predictions")  # <model>/test.txt: TweetEval's format, one label id per line in test order;
# <model>/probs_{test,val}.csv: class probabilities per tweet
CONFUSION_DIR = Path(
    "plots/confusion"
)  # <model>.csv: actual,predicted per test tweet (.dvc/plots/confusion_all_classes)
RELIABILITY_DIR = Path("plots/reliability")  # <model>.json: confidence, accuracy, count per bin of the top probability
DETAILS = ("per_class", "confusion_matrix")  # of detailed_metrics: in predictions/<model>/details_test.json


def outputs(name: str) -> dict[str, Path]:
    return {
        "metric": METRICS_DIR / name / "macro_recall.json",
        "metrics": METRICS_DIR / name / "test.json",
        "predictions": PREDICTIONS_DIR / name,
        "confusion": CONFUSION_DIR / f"{name}.csv",
        "reliability": RELIABILITY_DIR / f"{name}.json",
    }


def model_dir(name: str) -> Path:
    """The trained model to score; tune's is its best trial, exported like train_bert's model."""
    member = SEED_MEMBER.fullmatch(name)
    directory = Path("models") / name if member else MODEL_DIRS[name]
    stage = (
        f"train_bert_seed@{member[1]}"
        if member
        else {"tune_best": "tune", "ensemble": "ensemble"}.get(name, f"train_{name}")
    )
    if not directory.is_dir():
        raise PipelineError(f"{directory}: not found (run `dvc repro {stage}` or `dvc pull {stage}` first)")
    if name == "tune_best":
        results = directory / "tuning_results.json"
        try:
            best = json.loads(results.read_text(encoding="utf-8"))["best_trial"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PipelineError(
                f"{results}: no best_trial ({type(exc).__name__}: {exc}); run `dvc repro tune`"
            ) from None
        # a trial number: a pulled models/tune must not point the path anywhere else ("0/../..")
        if not isinstance(best, int) or isinstance(best, bool) or best < 0:
            raise PipelineError(f"{results}: best_trial = {best!r}: expected a trial number; run `dvc repro tune`")
        directory = directory / f"config_{best}"
    return directory


def class_prior(train_labels: list[int], label_names: list[str]) -> list[float]:
    """The share of each class in train: the majority baseline's probabilities for every tweet."""
    counts = Counter(train_labels)
    return [counts[i] / len(train_labels) for i in range(len(label_names))]


def majority_baseline(train_labels: list[int], test_labels: list[int], label_names: list[str]) -> dict:
    """Always the most frequent class in train: the floor every model must clear."""
    prior = class_prior(train_labels, label_names)
    majority = prior.index(max(prior))  # the lowest id among tied classes, as the prior's argmax
    predictions = [majority] * len(test_labels)
    return {"predicts": label_names[majority], **detailed_metrics(test_labels, predictions, label_names)}


def write_outputs(
    name: str,
    report: dict,
    predictions: list[int],
    labels: list[int],
    label_names: list[str],
    probabilities: dict,
    val_labels: list[int],
    inference: dict | None = None,
) -> None:
    """``probabilities``: {split: (tweets, classes) array} for test and val. The metric files, the
    predictions directory and the confusion and reliability plots are replaced together, or (on a
    failure, such as a full disk) left as the previous run wrote them."""
    val_predictions = np.asarray(probabilities["val"]).argmax(axis=1).tolist()
    val_macro_recall = detailed_metrics(val_labels, val_predictions, label_names)["macro_recall"]
    bins = reliability_bins(np.asarray(probabilities["test"]), labels)
    with replace_together(list(outputs(name).values())) as staged:
        paths = dict(zip(outputs(name), staged))
        write_json(paths["metric"], {name: {"test": report["macro_recall"], "val": val_macro_recall}})
        write_json(
            paths["reliability"],
            [{k: row[k] for k in ("confidence", "accuracy", "count")} for row in bins if row["count"]],
        )
        # the metric holds the headline figures (one column each in `dvc exp show`); per class and
        # confusion counts go beside the predictions, and the confusion matrix is also a plot
        write_json(paths["metrics"], {key: value for key, value in report.items() if key not in DETAILS})
        write_json(paths["predictions"] / "details_test.json", {key: report[key] for key in DETAILS})
        with atomic_open(paths["predictions"] / "test.txt") as handle:
            handle.writelines(f"{label}\n" for label in predictions)
        for split, rows in probabilities.items():
            write_probabilities(paths["predictions"] / probabilities_file(split), rows, label_names)
        if inference is not None:
            write_json(paths["predictions"] / "inference.json", inference)
        with atomic_open(paths["confusion"]) as handle:
            handle.write("actual,predicted\n")
            handle.writelines(f"{label_names[a]},{label_names[p]}\n" for a, p in zip(labels, predictions))


def main(params: dict, name: str) -> None:
    use_all_cpu_cores()
    cfg, label_names = params["evaluate"], params["data"]["label_names"]
    test, val = read_split(DATA_DIR / "test.jsonl"), read_split(DATA_DIR / "val.jsonl")
    if name == "majority":
        train_labels = read_split(DATA_DIR / "train.jsonl").labels
        report = majority_baseline(train_labels, test.labels, label_names)
        predicts = report.pop("predicts")
        prior = class_prior(train_labels, label_names)
        write_outputs(
            name,
            report,
            [label_names.index(predicts)] * len(test.labels),
            test.labels,
            label_names,
            {"test": [prior] * len(test.labels), "val": [prior] * len(val.labels)},
            val.labels,
        )
        print(
            f"evaluate: majority (always {predicts}): test macro_recall {report['macro_recall']:.4f}  "
            f"accuracy {report['accuracy']:.4f}"
        )
        return
    if name == "ensemble":  # its model is the members' probabilities, combined by the ensemble stage
        directory = model_dir(name)
        probabilities = {
            split: read_probabilities(directory / probabilities_file(split), label_names, len(data))
            for split, data in (("test", test), ("val", val))
        }
        predictions = probabilities["test"].argmax(axis=1).tolist()
        report = detailed_metrics(test.labels, predictions, label_names)
        write_outputs(name, report, predictions, test.labels, label_names, probabilities, val.labels)
        print(
            f"evaluate: ensemble: test macro_recall {report['macro_recall']:.4f}  accuracy {report['accuracy']:.4f}  "
            f"macro_f1 {report['macro_f1']:.4f}"
        )
        return
    directory = model_dir(name)
    trained = load_model(directory, cfg["device"])
    if trained.label_names != label_names:
        raise DataError(f"{directory}: trained for labels {trained.label_names}, data.label_names is {label_names}")
    with explain_out_of_memory("evaluate.batch_size", cfg["batch_size"]):
        report, predictions, test_probabilities = score_texts(
            trained, test.texts, test.labels, cfg["batch_size"], cfg["device"]
        )
        val_probabilities = predict_proba(trained, val.texts, cfg["batch_size"], cfg["device"])
    inference = report.pop("inference")
    write_outputs(
        name,
        report,
        predictions,
        test.labels,
        label_names,
        {"test": test_probabilities, "val": val_probabilities},
        val.labels,
        inference,
    )
    print(
        f"evaluate: {name}: test macro_recall {report['macro_recall']:.4f}  accuracy {report['accuracy']:.4f}  "
        f"macro_f1 {report['macro_f1']:.4f}  {inference['tweets_per_s']:.0f} tweets/s on {inference['device']}"
    )


def parse_model(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="python -m stages.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("model", help=f"{', '.join(MODELS)}, or bert_seed<N> (stage train_bert_seed@N's model)")
    model = parser.parse_args(argv).model
    if model not in MODELS and not SEED_MEMBER.fullmatch(model):
        parser.error(f"argument model: invalid choice: {model!r} (choose from {', '.join(MODELS)}, bert_seed<N>)")
    return model


if __name__ == "__main__":
    model = parse_model(sys.argv[1:])
    run_stage(lambda params: main(params, model))
