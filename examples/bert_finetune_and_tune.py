"""Example: fine-tune a BERT-family model, then compare named configurations, through the Python API.

    python examples/bert_finetune_and_tune.py --data-dir data/raw --epochs 1

--data-dir: as for scripts.train (a TweetEval-layout directory, the processed directory, or a .csv/.tsv file).
--model-name: a Hugging Face model id or a local model directory (the default is in the offline cache
this project uses; bert-base-uncased needs a download). The same steps as command lines: scripts.train and
scripts.tune.
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
    parser.add_argument("--model-name", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--output-dir", default="examples_output/bert")
    args = parser.parse_args(argv)

    from src.core.cli import run_command
    from src.data.data_sources import read_dataset
    from src.models.bert_data import TokenizedTweets, make_bert_loader
    from src.models.bert_model import load_tokenizer
    from src.models.training import hyperparameter_tuning, train_model

    def work() -> None:
        # 1. data, tokenised once; batches padded to their longest tweet
        splits, label_names = read_dataset(args.data_dir)
        tokenizer = load_tokenizer(args.model_name)
        tokens = {
            name: TokenizedTweets(split.texts, split.labels, tokenizer, args.max_length)
            for name, split in splits.items()
        }
        train_loader = make_bert_loader(tokens["train"], 16, shuffle=True, seed=42)
        val_loader = make_bert_loader(tokens["val"], 64, shuffle=False)
        common = {
            "model_name": args.model_name,
            "tokenizer": tokenizer,
            "num_classes": len(label_names),
            "label_names": label_names,
        }

        # 2. fine-tune with the recommended hyperparameters: best_model.pt, checkpoint_epoch_X.pt,
        #    training_history.json and model/ in output_dir/finetune
        _, history = train_model(
            train_loader,
            val_loader,
            f"{args.output_dir}/finetune",
            num_epochs=args.epochs,
            learning_rate=2e-5,
            weight_decay=0.01,
            warmup_ratio=0.1,
            device="auto",
            **common,
        )

        # 3. compare two named configurations on validation: config_X/ and tuning_results.json in output_dir/tune
        configurations = {
            "config_1": {"learning_rate": 2e-5, "num_epochs": args.epochs},
            "config_2": {"learning_rate": 5e-5, "num_epochs": args.epochs},
        }
        _, best = hyperparameter_tuning(
            train_loader, val_loader, None, f"{args.output_dir}/tune", configurations, "auto", **common
        )
        print(json.dumps({"finetune_val_accuracy": history["val_accuracy"], "best_hyperparameters": best}, indent=2))

    run_command(work)


if __name__ == "__main__":
    main()
