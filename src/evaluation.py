"""Score a trained model (LSTM or BERT) on one processed split; no selection happens here.

    python -m src.evaluation --model-dir models/lstm --split test
    python -m src.evaluation --model-dir models/bert --split test   # the save_pretrained export
prints JSON: accuracy, macro_recall (TweetEval's metric), macro_f1, n.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from src.errors import PipelineError
from src.models.lstm_data import make_loader
from src.models.lstm_model import LSTMClassifier
from src.preprocess import read_split
from src.runtime import explain_out_of_memory, use_all_cpu_cores
from src.training.checkpoint_manager import load_checkpoint_file
from src.training.trainer import evaluate, resolve_device
from src.vocab import Vocabulary


def load_lstm(model_dir: str | os.PathLike, device: torch.device) -> tuple[LSTMClassifier, Vocabulary]:
    """The model and vocabulary that stages/train_lstm.py wrote to ``model_dir``."""
    model_dir = Path(model_dir)
    config_path = model_dir / "model_config.json"
    if not config_path.is_file():
        raise PipelineError(f"{config_path}: not found (run `dvc repro train_lstm` first)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    vocab = Vocabulary.load(model_dir / config.pop("vocab"))
    checkpoint = load_checkpoint_file(model_dir / config.pop("weights"), map_location=device)
    model = LSTMClassifier(**config)
    model.load_state_dict(checkpoint["model_state_dict"])
    return model.to(device), vocab


def bert_loader(model_dir: Path, split, batch_size: int, device: torch.device):
    """The exported BERT (``model_dir/model``: weights, config, tokenizer) and a padded-per-batch loader."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from src.models.bert_data import TokenizedTweets, make_bert_loader

    export = model_dir / "model"
    model = AutoModelForSequenceClassification.from_pretrained(export).to(device)
    tokenizer = AutoTokenizer.from_pretrained(export)
    # train_bert stores its max_length as the tokenizer's model_max_length
    dataset = TokenizedTweets(split.texts, split.labels, tokenizer, min(tokenizer.model_max_length, 512))
    return model, make_bert_loader(dataset, batch_size, shuffle=False)


def score_split(model_dir: str | os.PathLike, split_path: str | os.PathLike, batch_size: int = 256,
                device: str = "auto") -> dict:
    device, model_dir = resolve_device(device), Path(model_dir)
    split = read_split(split_path)
    is_bert = (model_dir / "model" / "config.json").is_file()  # train_bert's save_pretrained export
    if is_bert:
        model, loader = bert_loader(model_dir, split, batch_size, device)
    else:
        model, vocab = load_lstm(model_dir, device)
        loader = make_loader(split.texts, split.labels, vocab, batch_size, shuffle=False)
    # the precision each model was validated in during training (train_bert: bf16 where native)
    result = evaluate(model, loader, device, mixed_precision=is_bert)
    return {"split": str(split_path), "n": len(split), "accuracy": result["accuracy"],
            "macro_recall": result["macro_recall"], "macro_f1": result["macro_f1"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="models/lstm")
    parser.add_argument("--split", default="test", help="train | val | test (a file under --data-dir)")
    parser.add_argument("--data-dir", default="data/processed")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    use_all_cpu_cores()
    try:
        with explain_out_of_memory("--batch-size", args.batch_size):
            split_path = Path(args.data_dir) / f"{args.split}.jsonl"
            scores = score_split(args.model_dir, split_path, args.batch_size, args.device)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
