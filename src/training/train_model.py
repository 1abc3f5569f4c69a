"""Command line: train the (Bi)LSTM sentiment classifier (`--help` lists every option).

    python src/training/train_model.py --data-dir data/raw --epochs 20
    python -m src.training.train_model --data-dir data/processed --use-glove --glove-corpus twitter.27B --glove-dim 25d

The options are src/recipes/lstm_config.py's and the run src/recipes/lstm_run.py's, which the train_lstm
stage runs too; this command line adds the GloVe download (src.training.glove_loader) for --use-glove.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python src/training/train_model.py): import from the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str] | None = None) -> None:
    from src.core.cli import run_command
    from src.recipes.lstm_config import parse_args
    from src.recipes.lstm_run import run
    from src.training.glove_loader import initialize_model_with_glove

    def work() -> None:
        args = parse_args(argv)  # --help prints the usage and exits here
        print(json.dumps({"output_dir": args.output_dir, **run(args, initialize_model_with_glove)}, indent=2))

    run_command(work)


if __name__ == "__main__":
    main()
