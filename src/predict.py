"""Classify new text with a trained model; JSON lines out (label and class probabilities).

    python -m src.predict --model models/bert "what a great day" "traffic is awful"
    python -m src.predict --model models/lstm --input tweets.txt      # one text per line; - reads stdin

Texts get the normalisation the training data got (src.preprocess.normalize_tweet). Output line i
answers input text i, empty lines included.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterator, Sequence

from src.cli import pipeline_errors_exit
from src.evaluation import TrainedModel, load_model, predict_proba
from src.preprocess import normalize_tweet, read_lines
from src.runtime import explain_out_of_memory, use_all_cpu_cores


def read_texts(path: str) -> list[str]:
    """One text per line from ``path`` (``-``: stdin); undecodable bytes are an error naming the line."""
    if path == "-":
        return sys.stdin.read().splitlines()
    return read_lines(Path(path))  # as preprocess reads its files: missing, empty, bad bytes are errors


def classify(trained: TrainedModel, texts: Sequence[str], batch_size: int = 128,
             device: str = "auto") -> Iterator[dict]:
    """``{"text", "label", "label_id", "probabilities": {name: p}}`` per text, in order."""
    probabilities = predict_proba(trained, [normalize_tweet(t) for t in texts], batch_size, device)
    for text, row in zip(texts, probabilities):
        label_id = int(row.argmax())
        yield {"text": text, "label": trained.label_names[label_id], "label_id": label_id,
               "probabilities": {name: round(float(p), 4) for name, p in zip(trained.label_names, row)}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--model", required=True, help="a trained model directory: models/bert, models/lstm, "
                                                         "or a tune trial (models/tune/config_N)")
    parser.add_argument("--input", help="a file with one text per line (- for stdin)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if bool(args.texts) == bool(args.input):
        parser.error("give texts as arguments or --input FILE (one of them)")
    use_all_cpu_cores()
    with pipeline_errors_exit():
        texts = read_texts(args.input) if args.input else args.texts
        trained = load_model(args.model, args.device)
        with explain_out_of_memory("--batch-size", args.batch_size):
            results = list(classify(trained, texts, args.batch_size, args.device))
    for result in results:
        print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
