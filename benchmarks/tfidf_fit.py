"""The TF-IDF member's fit on this machine: lbfgs iterations and validation figures, for given tolerances.

    python -m benchmarks.tfidf_fit                 # params.yaml's tfidf section, scikit-learn's tol (1e-4)
    python -m benchmarks.tfidf_fit --tol 1e-6      # a tighter stop: how far the default stop is from the optimum

Fits ``src.models.tfidf``'s pipeline on data/processed/train.jsonl (``dvc repro preprocess``) and
scores validation; reads no test tweet. Prints one JSON object. Its use: the logistic regression
lands on slightly different points on different CPUs (BLAS rounding on a flat optimum), so two
machines can give the member different figures from the same params and data (docs/measurements.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from src.core.params import load_params
from src.data.preprocess import read_split
from src.models.tfidf import build_pipeline
from src.scoring.metrics import classification_metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tol", type=float, nargs="+", default=[1e-4], help="lbfgs stopping tolerances to fit with")
    parser.add_argument("--data-dir", default="data/processed")
    args = parser.parse_args(argv)
    params = load_params()
    train = read_split(Path(args.data_dir) / "train.jsonl", params["data"]["label_names"])
    val = read_split(Path(args.data_dir) / "val.jsonl", params["data"]["label_names"])
    fits = []
    for tol in args.tol:
        pipeline = build_pipeline(params["tfidf"])
        classifier = pipeline.named_steps["classifier"]
        classifier.set_params(tol=tol)
        started = time.perf_counter()
        pipeline.fit(train.texts, np.asarray(train.labels))
        seconds = time.perf_counter() - started
        figures = classification_metrics(val.labels, pipeline.predict(val.texts))
        fits.append({"tol": tol, "iterations": int(classifier.n_iter_.max()), "seconds": round(seconds, 1)})
        fits[-1].update({f"val_{k}": v for k, v in figures.items()})
    print(json.dumps({"machine": platform.processor() or platform.machine(), "fits": fits}, indent=2))


if __name__ == "__main__":
    main()
