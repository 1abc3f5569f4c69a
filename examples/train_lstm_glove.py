"""Example: train the (Bi)LSTM classifier with GloVe embeddings through the Python API.

    python examples/train_lstm_glove.py --data-dir data/raw --epochs 5

--data-dir: a TweetEval-layout directory (data/raw after `dvc repro download_data`), the processed directory
(data/processed), or a .csv/.tsv file. GloVe comes through the project's downloader (set
SENTIMENT_MIRROR to read it from an offline mirror). The same training, with every option, is the command
line src/training/train_model.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: import the repository's src


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data/raw")
    parser.add_argument("--glove-corpus", default="twitter.27B")
    parser.add_argument("--glove-dim", default="25d")
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--output-dir", default="examples_output/lstm")
    args = parser.parse_args(argv)

    from src.core.cli import run_command
    from src.data.data_sources import read_dataset
    from src.data.vocab import Vocabulary
    from src.models.lstm_data import make_loader
    from src.models.lstm_model import LSTMClassifier
    from src.training import create_trainer, initialize_model_with_glove

    def work() -> None:
        # 1. data: train/val splits and their label names; a vocabulary built from train
        splits, label_names = read_dataset(args.data_dir)
        vocab = Vocabulary.build(splits["train"].texts, min_freq=1)
        train_loader = make_loader(splits["train"].texts, splits["train"].labels, vocab, 64, shuffle=True, seed=0)
        val_loader = make_loader(splits["val"].texts, splits["val"].labels, vocab, 256, shuffle=False)

        # 2. the model, its embedding initialised with GloVe rows aligned to the vocabulary
        model = LSTMClassifier(
            vocab_size=len(vocab),
            embedding_dim=int(args.glove_dim.rstrip("d")),
            hidden_dim=args.hidden_dim,
            output_dim=len(label_names),
            n_layers=1,
        )
        stats = initialize_model_with_glove(model, vocab, corpus=args.glove_corpus, dimension=args.glove_dim)

        # 3. train with checkpoints, a plateau scheduler and early stopping
        trainer = create_trainer(
            model,
            train_loader,
            val_loader,
            learning_rate=2e-3,
            scheduler_type="plateau",
            checkpoint_dir=args.output_dir,
            epochs=args.epochs,
            progress=False,
        )
        history = trainer.train(epochs=args.epochs, early_stopping_patience=3)
        summary = trainer.get_training_summary()
        print(
            json.dumps(
                {
                    "glove_vocab_coverage": stats["vocab_coverage"],
                    "epochs_completed": summary["training_status"]["epochs_completed"],
                    "best_val_accuracy": summary["performance_metrics"]["best_val_accuracy"],
                    "val_losses": history["val_losses"],
                    "checkpoints": args.output_dir,
                },
                indent=2,
            )
        )

    run_command(work)


if __name__ == "__main__":
    main()
