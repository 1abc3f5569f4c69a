"""Classify new text with a trained model; JSON lines out (label and class probabilities).

    python -m src.predict --model models/bert "what a great day" "traffic is awful"
    python -m src.predict --model models/lstm --input tweets.txt      # one text per line; - reads stdin

Texts get the normalisation the training data got (src.data.preprocess.normalize_tweet); a text longer
than 64K characters is classified by its first 64K (the model reads at most max_length tokens).
Output line i answers input text i, empty lines included. Input is read, classified and written in
chunks of 4,096 lines, so memory does not grow with the number of lines; a line longer than 64 MB is an
error naming it (the lines before it have their results written).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from src.core.cli import positive_int_option, print_lines, run_command
from src.core.errors import DataError
from src.core.runtime import explain_out_of_memory, use_all_cpu_cores
from src.data.normalization import without_lone_surrogates
from src.data.preprocess import iter_lines, normalize_tweet
from src.evaluation import device_option, predict_proba
from src.models.loading import TrainedModel, load_model

STDIN = "<stdin>"
# A model reads at most max_length (<= 4096) tokens of a text; tokenising a 50 MB line whole to keep
# its first tokens would take gigabytes, so texts are cut to this many characters first.
MAX_TEXT_CHARS = 64 * 1024
# Input is read, classified and written this many texts (or characters) at a time: memory stays the same
# for a million lines as for a thousand.
CHUNK_TEXTS = 4096
CHUNK_CHARS = 16 << 20


def input_texts(path: str) -> Iterator[str]:
    """One text per line from ``path`` (``-``: stdin), read as they are needed. Stdin follows the rules of
    a file, by the same reader (src.data.preprocess.iter_lines): split on ``\\n`` only, UTF-8 or an error
    naming the line, a line over 64 MB cut while reading, empty input is an error."""
    if path != "-":
        file = Path(path)
        if not file.is_file():
            raise DataError(f"{file}: file not found")
        with open(file, "rb") as handle:
            yield from iter_lines(handle, str(file))
        return
    if sys.stdin is None:
        raise DataError(f"{STDIN}: closed; pipe texts in, or give them as arguments or with --input FILE")
    yield from iter_lines(sys.stdin.buffer, STDIN, empty="no input (it is empty); pipe texts in, one per line")


def read_texts(path: str) -> list[str]:
    """All the texts of ``path`` (``-``: stdin) at once, by the rules of :func:`input_texts`."""
    return list(input_texts(path))


def chunks(texts: Iterable[str]) -> Iterator[list[str]]:
    """``texts`` in lists of at most CHUNK_TEXTS texts and (but for one long text) CHUNK_CHARS characters:
    what is classified and written at a time, so memory does not grow with the input."""
    chunk: list[str] = []
    chars = 0
    for text in texts:
        if chunk and (len(chunk) == CHUNK_TEXTS or chars + len(text) > CHUNK_CHARS):
            yield chunk
            chunk, chars = [], 0
        chunk.append(text)
        chars += len(text)
    if chunk:
        yield chunk


def classify(
    trained: TrainedModel, texts: Sequence[str], batch_size: int = 128, device: str = "auto"
) -> Iterator[dict]:
    """``{"text", "label", "label_id", "probabilities": {name: p}}`` per text, in order."""
    probabilities = predict_proba(trained, [normalize_tweet(t[:MAX_TEXT_CHARS]) for t in texts], batch_size, device)
    for text, row in zip(texts, probabilities):
        label_id = int(row.argmax())
        yield {
            "text": without_lone_surrogates(text, "\ufffd"),  # JSON lines are UTF-8: what a decoder shows
            "label": trained.label_names[label_id],
            "label_id": label_id,
            "probabilities": {name: round(float(p), 4) for name, p in zip(trained.label_names, row)},
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument(  # --model-dir: src.evaluation's spelling for the same thing
        "--model",
        "--model-dir",
        dest="model",
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
    run_command(lambda: _classify_all(args))  # as the stages: SIGINT exit 130, SIGTERM 143, one line each


def _classify_all(args) -> None:
    """Classify the texts of ``args`` in chunks, printing one JSON line per text."""
    batch_size, device = positive_int_option(args.batch_size, "--batch-size"), device_option(args.device)
    batches = chunks(input_texts(args.input) if args.input else args.texts)
    first = next(batches)  # a bad first chunk of input is reported before the model is loaded
    trained = load_model(args.model, device)
    with explain_out_of_memory("--batch-size", batch_size):
        for batch in itertools.chain([first], batches):
            results = classify(trained, batch, batch_size, device)
            print_lines(json.dumps(result, ensure_ascii=False) for result in results)


if __name__ == "__main__":
    main()
