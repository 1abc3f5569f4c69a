"""The stock Hugging Face ``Trainer`` on processed JSON-lines splits: what a user would write instead of train_bert.

    python benchmarks/stock_trainer.py --train data/processed/train.jsonl --val data/processed/val.jsonl \
        --model sentence-transformers/all-MiniLM-L6-v2 --epochs 1 --batch-size 32 --seed 42

A plain script: it imports transformers, torch and scikit-learn, nothing of this repository (so none
of the project's CPU settings), and prints one JSON line with the validation (and, with ``--test``,
the test) accuracy, macro-recall and macro-F1. Default ``TrainingArguments`` except what the work
itself fixes: epochs, batch size, learning rate, seed, and the pipeline's weight decay, warmup ratio
and dropout (without them it would train another model). It tokenises once, pads per batch
(``DataCollatorWithPadding``) and scores with ``predict``. It is spared the default step checkpoints
(``save_strategy="no"``), which train_bert does not skip. ``benchmarks.bert_vs_hf_trainer`` runs it.
"""

from __future__ import annotations

import argparse
import json
import tempfile


def read_jsonl(path: str) -> tuple[list[str], list[int]]:
    """Texts and labels of a split written by the preprocess stage (``{"text": ..., "label": ...}`` per line)."""
    texts, labels = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(int(row["label"]))
    return texts, labels


def scores(labels: list[int], predictions: list[int]) -> dict:
    """Accuracy, macro-recall (TweetEval's sentiment metric) and macro-F1, rounded to 4 digits."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    return {
        "accuracy": round(accuracy_score(labels, predictions), 4),
        "macro_recall": round(recall_score(labels, predictions, average="macro", zero_division=0), 4),
        "macro_f1": round(f1_score(labels, predictions, average="macro", zero_division=0), 4),
    }


def train_and_score(args, train: tuple, scored: dict[str, tuple], bf16: bool = False) -> dict:
    """Train on ``train`` (texts, labels), then score each of ``scored`` ({prefix: (texts, labels)})."""
    import numpy as np
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)

    class Encoded(torch.utils.data.Dataset):
        def __init__(self, split):
            texts, self.labels = split
            self.encoded = tokenizer(texts, truncation=True, max_length=args.max_length)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {
                "input_ids": self.encoded["input_ids"][i],
                "attention_mask": self.encoded["attention_mask"][i],
                "labels": self.labels[i],
            }

    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, num_labels=3, classifier_dropout=args.dropout
    )
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out,
            num_train_epochs=args.epochs,
            per_device_train_batch_size=args.batch_size,
            learning_rate=args.lr,
            seed=args.seed,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup_ratio,  # a float in [0, 1) is a ratio of the steps (transformers 5)
            bf16=bf16,
            use_cpu=not torch.cuda.is_available(),
            save_strategy="no",
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=Encoded(train),
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.train()
        result = {}
        for prefix, split in scored.items():
            predictions = np.argmax(trainer.predict(Encoded(split)).predictions, axis=1).tolist()
            result.update({f"{prefix}_{k}": v for k, v in scores(split[1], predictions).items()})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="a processed train split (JSON lines)")
    parser.add_argument("--val", required=True, help="a processed validation split (JSON lines)")
    parser.add_argument("--test", help="a processed test split, scored once for the report")
    parser.add_argument("--model", required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bf16", action="store_true", help="bf16=True, as a user would set it on a GPU")
    args = parser.parse_args()
    scored = {"val": read_jsonl(args.val), **({"test": read_jsonl(args.test)} if args.test else {})}
    print(json.dumps(train_and_score(args, read_jsonl(args.train), scored, bf16=args.bf16)))


if __name__ == "__main__":
    main()
