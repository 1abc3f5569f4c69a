"""Fine-tune a BERT-family model for sentiment classification.

    python -m scripts.train --data_dir data/raw --output_dir ./models --config ./config/model_config.json

--data_dir: a TweetEval-layout directory, the processed directory of `dvc repro preprocess`, or a .csv/.tsv
file. --config: JSON with num_epochs, learning_rate, batch_size, weight_decay, warmup_ratio, dropout_prob,
model_name (and optionally max_length, seed, device, label_names, ...: src/recipes/bert_config.py's BertConfig).
Writes into --output_dir: checkpoint_epoch_X.pt after each epoch, best_model.pt (the best epoch on validation
macro recall), training_history.json, and model/ (save_pretrained weights and tokenizer).
The train_bert stage runs the same training (src.models.training.train_model) with params.yaml's values.
"""

from __future__ import annotations

import argparse
import json


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(
        prog="python -m scripts.train",
        description=doc[0],
        epilog="\n\n".join(doc[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data_dir", required=True, help="the data set (directory or .csv/.tsv file)")
    parser.add_argument("--output_dir", default="./models", help="where the model files go (default ./models)")
    parser.add_argument("--config", default="./config/model_config.json", help="JSON of settings")
    return parser


def main(argv: list[str] | None = None) -> None:
    from src.core.cli import run_command

    def work() -> None:
        args = build_parser().parse_args(argv)
        from src.core.runtime import resolve_device, use_all_cpu_cores
        from src.models.training import train_model
        from src.recipes.bert_config import BertConfig
        from src.recipes.bert_files import bert_loaders, train_options

        use_all_cpu_cores()
        config, _ = BertConfig.from_file(args.config)
        device = resolve_device(config.device, key=f"{args.config}: device")  # once: no GPU for `cuda` fails here
        tokenizer, label_names, train_loader, val_loader, _, train_labels = bert_loaders(args.data_dir, config)
        _, history = train_model(
            train_loader,
            val_loader,
            args.output_dir,
            config.num_epochs,
            config.learning_rate,
            config.weight_decay,
            config.warmup_ratio,
            device,
            dropout_prob=config.dropout_prob,
            seed=config.seed,
            **train_options(config, tokenizer, label_names, train_labels, args.data_dir),
        )
        best = history["best_epoch"] - 1
        print(
            json.dumps(
                {
                    "output_dir": args.output_dir,
                    "best_epoch": history["best_epoch"],
                    "val_accuracy": history["val_accuracy"][best],
                    "val_macro_recall": history["val_macro_recall"][best],
                },
                indent=2,
            )
        )

    run_command(work)


if __name__ == "__main__":
    main()
