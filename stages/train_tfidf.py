"""train_tfidf: a TF-IDF (word + character n-gram) logistic regression on data/processed -> models/tfidf/,
metrics/tfidf/train.json.

    python -m stages.train_tfidf

Fits src/models/tfidf.py's scikit-learn pipeline on train with params.yaml's ``tfidf`` section and
scores validation (the figure its hyperparameters were chosen on, docs/decisions.md). The model
is saved as plain arrays, not pickle (src/models/tfidf.py). evaluate@tfidf scores it on test and writes
its probabilities, which the ensemble can combine with the neural models'.
"""

import shutil
import sys
from pathlib import Path

from src.core.atomic import write_json
from src.core.cli import run_stage
from src.core.errors import ParamsError
from src.data.preprocess import check_every_class_present, read_split
from src.models.tfidf import check_params, fit, save
from src.scoring.metrics import classification_metrics

DATA_DIR = Path("data/processed")
MODEL_DIR = Path("models/tfidf")
METRICS_FILE = Path("metrics/tfidf/train.json")


def main(params: dict) -> None:
    if "tfidf" not in params:
        raise ParamsError(
            "params.yaml: tfidf: missing (expected word_ngrams, char_ngrams, min_df, C, class_weight, max_iter)"
        )
    cfg, label_names = params["tfidf"], params["data"]["label_names"]
    check_params(cfg)
    train, val = (read_split(DATA_DIR / f"{name}.jsonl", label_names) for name in ("train", "val"))
    check_every_class_present(train, label_names, DATA_DIR / "train.jsonl")
    if MODEL_DIR.exists():  # a failed run must not leave the previous model looking current
        shutil.rmtree(MODEL_DIR)
    METRICS_FILE.unlink(missing_ok=True)
    pipeline = fit(train.texts, train.labels, cfg)
    val_metrics = classification_metrics(val.labels, pipeline.predict(val.texts).tolist())
    save(pipeline, MODEL_DIR, label_names, cfg)
    features = sum(len(step.vocabulary_) for _, step in pipeline.named_steps["features"].transformer_list)
    write_json(METRICS_FILE, {"val": val_metrics, "features": features})
    print(
        f"train_tfidf: {features:,} n-gram features; val macro_recall {val_metrics['macro_recall']:.4f}  "
        f"accuracy {val_metrics['accuracy']:.4f}"
    )


if __name__ == "__main__":
    run_stage(main, argv=sys.argv[1:])
