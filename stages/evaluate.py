"""evaluate: every trained model on the test split -> metrics/evaluate.json, predictions/, plots/confusion/.

Only scoring happens here: the models were selected on validation by train_bert, train_lstm and tune.
"""
import json
from collections import Counter
from pathlib import Path

from src.atomic import atomic_open, write_json
from src.cli import run_stage
from src.errors import DataError
from src.evaluation import load_model, score_texts
from src.metrics import detailed_metrics
from src.preprocess import read_split
from src.runtime import out_of_memory_names, use_all_cpu_cores

DATA_DIR = Path("data/processed")
TUNE_DIR = Path("models/tune")
METRICS_PATH = Path("metrics/evaluate.json")
PREDICTIONS_DIR = Path("predictions")     # TweetEval's format: one label id per line, in test order
CONFUSION_DIR = Path("plots/confusion")   # actual,predicted per test tweet: DVC's confusion template


def trained_models() -> dict[str, Path]:
    """The model directories to score, by the name they get in the metrics."""
    models = {"bert": Path("models/bert"), "lstm": Path("models/lstm")}
    results = TUNE_DIR / "tuning_results.json"
    if results.is_file():  # tune's best trial, exported like train_bert's model
        models["tune_best"] = TUNE_DIR / f"config_{json.loads(results.read_text())['best_trial']}"
    return models


def majority_baseline(train_labels: list[int], test_labels: list[int], label_names: list[str]) -> dict:
    """Always the most frequent class in train: the floor every model must clear."""
    majority = Counter(train_labels).most_common(1)[0][0]
    return {"predicts": label_names[majority], **detailed_metrics(test_labels, [majority] * len(test_labels), label_names)}


def write_predictions(name: str, predictions: list[int], labels: list[int], label_names: list[str]) -> None:
    with atomic_open(PREDICTIONS_DIR / f"{name}.txt") as handle:
        handle.writelines(f"{label}\n" for label in predictions)
    with atomic_open(CONFUSION_DIR / f"{name}.csv") as handle:
        handle.write("actual,predicted\n")
        handle.writelines(f"{label_names[a]},{label_names[p]}\n" for a, p in zip(labels, predictions))


@out_of_memory_names(("evaluate.batch_size",))
def main(params: dict) -> None:
    use_all_cpu_cores()
    cfg, label_names = params["evaluate"], params["data"]["label_names"]
    test = read_split(DATA_DIR / "test.jsonl")
    train = read_split(DATA_DIR / "train.jsonl")
    results = {"majority_baseline": {"test": majority_baseline(train.labels, test.labels, label_names)}}
    for name, model_dir in trained_models().items():
        if not model_dir.is_dir():
            print(f"evaluate: {model_dir} not found, {name} skipped")
            continue
        trained = load_model(model_dir, cfg["device"])
        if trained.label_names != label_names:
            raise DataError(f"{model_dir}: trained for labels {trained.label_names}, data.label_names is {label_names}")
        report, predictions = score_texts(trained, test.texts, test.labels, cfg["batch_size"], cfg["device"])
        inference = report.pop("inference")
        results[name] = {"test": report, "inference": inference}
        write_predictions(name, predictions, test.labels, label_names)
        print(f"evaluate: {name}: test macro_recall {report['macro_recall']:.4f}  accuracy {report['accuracy']:.4f}  "
              f"macro_f1 {report['macro_f1']:.4f}  {inference['tweets_per_s']:.0f} tweets/s on {inference['device']}")
    write_json(METRICS_PATH, results)


if __name__ == "__main__":
    run_stage(main)
