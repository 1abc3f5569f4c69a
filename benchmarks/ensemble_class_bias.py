"""The ensemble's cross-validated validation macro recall with and without class-bias offsets.

    python -m benchmarks.ensemble_class_bias bert lstm tfidf
    python -m benchmarks.ensemble_class_bias tfidf lstm=/tmp/lstm_probs_val.csv
    python -m benchmarks.ensemble_class_bias bert+bert_seed43 tune_best lstm tfidf

Each member is a model name (its evaluate stage's predictions/<model>/probs_val.csv), models joined
by '+' (averaged with equal weights, as in ``ensemble.members``) or NAME=PATH of a probabilities CSV
in the same format. Reads validation only: what ``ensemble.class_bias`` is
chosen on. Prints one JSON object: the weights and offsets fitted on all of validation, and the
5-fold cross-validated macro recall without and with offsets (the same folds, the stage's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from src.core.params import load_params
from src.data.preprocess import read_split
from src.scoring.ensemble import (
    apply_bias,
    combine,
    cross_validated_macro_recall,
    fit_class_bias,
    fit_weights,
    read_member,
)
from src.scoring.ensemble import macro_recall as in_sample
from src.scoring.probabilities import read_probabilities


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", help="MODEL or NAME=PATH")
    parser.add_argument("--data-dir", default="data/processed")
    args = parser.parse_args(argv)
    params = load_params()
    cfg, label_names = params["ensemble"], params["data"]["label_names"]
    val = read_split(Path(args.data_dir) / "val.jsonl", label_names)
    names, probabilities = [], []
    for member in args.members:
        name, _, path = member.partition("=")
        names.append(name)
        probabilities.append(
            read_probabilities(Path(path), label_names, len(val.labels))
            if path
            else read_member(name, "probs_val.csv", label_names, len(val.labels), Path("predictions"))
        )
    weights = fit_weights(val.labels, probabilities, cfg["grid_step"])
    combined = combine(probabilities, weights)
    offsets = fit_class_bias(val.labels, combined)
    members_val = {n: round(in_sample(val.labels, p), 4) for n, p in zip(names, probabilities)}
    cross_validated = {
        bias: cross_validated_macro_recall(val.labels, probabilities, cfg["grid_step"], cfg["seed"], class_bias=bias)
        for bias in (False, True)
    }
    print(
        json.dumps(
            {
                "members": names,
                "members_val_macro_recall": members_val,
                "weights": dict(zip(names, weights)),
                "class_bias": dict(zip(label_names, offsets)),
                "val_macro_recall": round(in_sample(val.labels, combined), 4),
                "val_macro_recall_with_class_bias": round(in_sample(val.labels, apply_bias(combined, offsets)), 4),
                "cross_validated_without_class_bias": round(cross_validated[False], 4),
                "cross_validated_with_class_bias": round(cross_validated[True], 4),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
