"""The TF-IDF model's hyperparameters on validation: a small grid, train fit, validation scored.

    python -m benchmarks.tfidf_grid --data-dir data/processed --out tfidf_grid.json

Reads train.jsonl and val.jsonl only (never test). First every C and class weighting on the first
feature setting (the features built once for all of them), then the other feature settings at the
best of those. Every fit starts from scratch, as train_tfidf's does: a warm start from the previous
C stops lbfgs early at a different point.
Prints one JSON row per candidate (validation macro recall, TweetEval's metric, and accuracy) and
writes them all, best first, to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sklearn.metrics import accuracy_score, recall_score

from src.core.atomic import write_json
from src.data.preprocess import read_split
from src.models.tfidf import build_pipeline

FEATURES = [  # (word n-grams, char n-grams, min_df); the first is the one C and class_weight are chosen on
    ([1, 2], [2, 5], 2),
    ([1, 3], [1, 4], 2),
]
CS = [0.5, 1.0, 2.0]
CLASS_WEIGHTS = ["balanced", None]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data/processed")
    parser.add_argument("--out", default="tfidf_grid.json")
    parser.add_argument("--max-iter", type=int, default=1000)
    args = parser.parse_args(argv)
    train, val = (read_split(Path(args.data_dir) / f"{name}.jsonl") for name in ("train", "val"))
    rows = []

    def featurise(word, char, min_df):
        features = build_pipeline(
            {"word_ngrams": word, "char_ngrams": char, "min_df": min_df, "C": 1.0, "class_weight": None, "max_iter": 1}
        ).named_steps["features"]
        return features.fit_transform(train.texts), features.transform(val.texts)

    def score(word, char, min_df, settings, x_train, x_val):
        for c, class_weight in settings:
            cfg = {"word_ngrams": word, "char_ngrams": char, "min_df": min_df, "C": c, "class_weight": class_weight}
            started = time.perf_counter()
            classifier = build_pipeline({**cfg, "max_iter": args.max_iter}).named_steps["classifier"]
            classifier.fit(x_train, train.labels)
            predicted = classifier.predict(x_val)
            row = {
                **cfg,
                "features": x_train.shape[1],
                "val_macro_recall": round(float(recall_score(val.labels, predicted, average="macro")), 4),
                "val_accuracy": round(float(accuracy_score(val.labels, predicted)), 4),
                "iterations": int(classifier.n_iter_.max()),
                "fit_s": round(time.perf_counter() - started, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)

    (word, char, min_df), *others = FEATURES
    score(word, char, min_df, [(c, w) for w in CLASS_WEIGHTS for c in CS], *featurise(word, char, min_df))
    best = max(rows, key=lambda row: row["val_macro_recall"])
    for word, char, min_df in others:
        score(word, char, min_df, [(best["C"], best["class_weight"])], *featurise(word, char, min_df))
    rows.sort(key=lambda row: -row["val_macro_recall"])
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
