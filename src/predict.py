"""Classify new text with a trained model; JSON lines out (label and class probabilities).

    python -m src.predict --model models/bert "what a great day" "traffic is awful"
    python -m src.predict --model models/lstm --input tweets.txt      # one text per line; - reads stdin

Texts get the normalisation the training data got (src.data.preprocess.normalize_tweet); a text longer
than 64K characters is classified by its first 64K (the model reads at most max_length tokens).
Output line i answers input text i, empty lines included.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from src.core.cli import pipeline_errors_exit, positive_int_option, print_lines
from src.core.errors import DataError
from src.core.runtime import explain_out_of_memory, use_all_cpu_cores
from src.data.preprocess import normalize_tweet, read_lines, split_lines
from src.evaluation import device_option, predict_proba
from src.models.loading import TrainedModel, load_model

STDIN = "<stdin>"
# A model reads at most max_length (<= 4096) tokens of a text; tokenising a 50 MB line whole to keep
# its first tokens would take gigabytes, so texts are cut to this many characters first.
MAX_TEXT_CHARS = 64 * 1024


def read_texts(path: str) -> list[str]:
    """One text per line from ``path`` (``-``: stdin). Stdin follows the rules of a file, by the same
    reader (src.data.preprocess.split_lines): split on ``\\n`` only, UTF-8 or an error naming the line,
    empty input is an error."""
    if path != "-":
        return read_lines(Path(path))  # as preprocess reads its files: missing, empty, bad bytes are errors
    if sys.stdin is None:
        raise DataError(f"{STDIN}: closed; pipe texts in, or give them as arguments or with --input FILE")
    try:
        data = sys.stdin.buffer.read()
    except (OSError, ValueError) as exc:
        raise DataError(f"{STDIN}: cannot be read ({exc}); give texts as arguments or with --input FILE") from None
    if not data.strip():
        raise DataError(f"{STDIN}: no input (it is empty); pipe texts in, one per line")
    return split_lines(data, STDIN)


def classify(
    trained: TrainedModel, texts: Sequence[str], batch_size: int = 128, device: str = "auto"
) -> Iterator[dict]:
    """``{"text", "label", "label_id", "probabilities": {name: p}}`` per text, in order."""
    probabilities = predict_proba(trained, [normalize_tweet(t[:MAX_TEXT_CHARS]) for t in texts], batch_size, device)
    for text, row in zip(texts, probabilities):
        label_id = int(row.argmax())
        yield {
            "text": text,
            "label": trained.label_names[label_id],
            "label_id": label_id,
            "probabilities": {name: round(float(p), 4) for name, p in zip(trained.label_names, row)},
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument(
        "--model",
        required=True,
        help="a trained model directory: models/bert, models/lstm, or a tune trial (models/tune/config_N)",
    )
    parser.add_argument("--input", help="a file with one text per line (- for stdin)")
    parser.add_argument("--batch-size", default="128")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    args = parser.parse_args(argv)
    if bool(args.texts) == bool(args.input):
        parser.error("give texts as arguments or --input FILE (one of them)")
    use_all_cpu_cores()
    with pipeline_errors_exit():
        batch_size, device = positive_int_option(args.batch_size, "--batch-size"), device_option(args.device)
        texts = read_texts(args.input) if args.input else args.texts
        trained = load_model(args.model, device)
        with explain_out_of_memory("--batch-size", batch_size):
            results = list(classify(trained, texts, batch_size, device))
        print_lines(json.dumps(result, ensure_ascii=False) for result in results)


if __name__ == "__main__":
    main()
