"""Validation macro recall on the tweets that carry a mark of TweetEval's files, and on the rest.

    python -m benchmarks.validation_marks bert tune_best lstm tfidf ensemble

About three validation tweets in ten carry a mark of how TweetEval's train and validation files were
written: a JSON escape left as text (``\\u002c`` for a comma, ``\\"``; no test tweet has one) or an
opening double quote, as a CSV field has (one validation tweet in five, one test tweet in ninety).
Each model's validation probabilities (its evaluate stage's ``predictions/<model>/probs_val.csv``;
models joined by '+' are averaged, as in ``ensemble.members``) are scored on the marked tweets and on
the unmarked ones, to see how much validation's figures owe to the marked part. Reads validation
only; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from src.core.params import load_params
from src.data.preprocess import read_split
from src.scoring.ensemble import macro_recall, read_member

MARKS = {"json_escape": re.compile(r'\\u[0-9a-fA-F]{4}|\\"'), "csv_quote": re.compile(r'^"')}


def marked_tweets(texts: list[str]) -> dict[str, np.ndarray]:
    """One mask per mark, ``marked`` (either) and ``unmarked``, over ``texts``."""
    masks = {name: np.array([bool(mark.search(text)) for text in texts], dtype=bool) for name, mark in MARKS.items()}
    masks["marked"] = np.logical_or.reduce(list(masks.values()))
    masks["unmarked"] = ~masks["marked"]
    return masks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "models", nargs="+", help="a model with predictions/<model>/probs_val.csv, or models joined by '+'"
    )
    parser.add_argument("--data-dir", default="data/processed")
    parser.add_argument("--predictions", default="predictions")
    args = parser.parse_args(argv)
    label_names = load_params()["data"]["label_names"]
    val = read_split(Path(args.data_dir) / "val.jsonl", label_names)
    labels = np.asarray(val.labels)
    masks = {"all": np.ones(len(labels), dtype=bool), **marked_tweets(val.texts)}
    report = {"tweets": {name: int(mask.sum()) for name, mask in masks.items()}, "val_macro_recall": {}}
    for model in args.models:
        probabilities = read_member(model, "probs_val.csv", label_names, len(labels), Path(args.predictions))
        report["val_macro_recall"][model] = {
            name: round(macro_recall(labels[mask], probabilities[mask]), 4) for name, mask in masks.items()
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
