"""Re-score every evaluated model with TweetEval's own evaluation script, from plots/confusion/<model>.csv.

    python -m benchmarks.tweeteval_check --script path/to/evaluation_script.py [--out tweeteval_check.json]

The script is cardiffnlp/tweeteval's ``evaluation_script.py`` (not shipped here: fetch that repository).
For each ``plots/confusion/<model>.csv`` (one ``actual,predicted`` row per test tweet, class names) this
writes the script's layout in a temporary directory (``sentiment/test_labels.txt`` from the actual column,
``sentiment.txt`` from the predicted one, label ids in data.label_names' order), runs the script with
``--task sentiment`` and compares its "TweetEval Score (sentiment)", macro-averaged recall, with the
committed ``metrics/<model>/test.json`` macro_recall. Prints JSON; exits 1 when any figure differs.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TOLERANCE = 1e-9


def rescore(script: Path, confusion: Path, label_names: list[str]) -> float:
    """TweetEval's sentiment score of one confusion CSV, as its own script computes it."""
    ids = {name: str(i) for i, name in enumerate(label_names)}
    with confusion.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    with tempfile.TemporaryDirectory() as root:
        gold = Path(root, "datasets", "sentiment")
        gold.mkdir(parents=True)
        # the script drops the text after the last newline: one label per line, newline-terminated
        (gold / "test_labels.txt").write_text("".join(ids[r["actual"]] + "\n" for r in rows))
        predictions = Path(root, "predictions")
        predictions.mkdir()
        (predictions / "sentiment.txt").write_text("".join(ids[r["predicted"]] + "\n" for r in rows))
        result = subprocess.run(
            [
                sys.executable,
                str(script),
                "--tweeteval_path",
                str(gold.parent),
                "--predictions_path",
                str(predictions),
                "--task",
                "sentiment",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    match = re.search(r"TweetEval Score \(sentiment\): ([0-9.eE+-]+)", result.stdout)
    if match is None:
        raise SystemExit(f"error: {script}: no score in its output:\n{result.stdout[-500:]}")
    return float(match.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tweeteval_check", description=__doc__.splitlines()[0])
    parser.add_argument("--script", type=Path, required=True, help="TweetEval's evaluation_script.py")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    from src.core.params import load_params

    label_names = load_params()["data"]["label_names"]
    models = {}
    for confusion in sorted(Path("plots/confusion").glob("*.csv")):
        model = confusion.stem
        committed = json.loads(Path(f"metrics/{model}/test.json").read_text())["macro_recall"]
        official = rescore(args.script, confusion, label_names)
        models[model] = {
            "tweeteval_script": official,
            "committed": committed,
            "same": abs(official - committed) <= TOLERANCE,
        }
    report = {"script": str(args.script), "tolerance": TOLERANCE, "models": models}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    sys.exit(0 if models and all(m["same"] for m in models.values()) else 1)


if __name__ == "__main__":
    main()
