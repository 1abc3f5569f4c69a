"""train_bert's training loop against the Hugging Face Trainer: same model, data, hyperparameters, machine.

Prints JSON: train samples/s and validation macro recall for each, and the speed ratio.

    HF_HOME=../shared/hf HF_HUB_OFFLINE=1 python -m benchmarks.bert_vs_hf_trainer \
        --model sentence-transformers/all-MiniLM-L6-v2 --train-samples 4000 --epochs 1

Both sides: the same pretrained encoder and head, the same stratified train subset and full
validation split (from data/processed, so run `dvc repro preprocess` first), AdamW without decay
on biases/LayerNorm, linear warmup, gradient clipping at 1.0, the same seed. The HF
Trainer gets its usual set-up: a dataset tokenised once and DataCollatorWithPadding (dynamic
padding); it does not group by length, which is the default.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np
import torch

from src.metrics import classification_metrics
from src.models import training
from src.models.bert_data import TokenizedTweets, make_bert_loader
from src.models.bert_model import BertSentimentClassifier, load_tokenizer
from src.preprocess import read_split, stratified_subset
from src.runtime import use_all_cpu_cores
from src.training.trainer import cpu_has_native_bf16, resolve_device


def ours(args, tokenizer, train, val, device) -> dict:
    """The train_bert path: seed API on the shared engine, length-grouped dynamically padded batches."""
    from transformers import set_seed

    set_seed(args.seed)
    train_loader = make_bert_loader(TokenizedTweets(train.texts, train.labels, tokenizer, args.max_length),
                                    args.batch_size, shuffle=True, seed=args.seed, pin_memory=device.type == "cuda")
    val_loader = make_bert_loader(TokenizedTweets(val.texts, val.labels, tokenizer, args.max_length), 128,
                                  shuffle=False, pin_memory=device.type == "cuda")
    model = BertSentimentClassifier(args.model, 3, args.dropout).to(device)
    optimizer = training.build_optimizer(model, args.lr, args.weight_decay, device)
    scheduler = training.build_scheduler(optimizer, args.epochs * len(train_loader), args.warmup_ratio)
    seconds = 0.0
    for _ in range(args.epochs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        training.train_epoch(model, train_loader, optimizer, scheduler, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - started
    _, _, predictions = training.evaluate(model, val_loader, device)
    return {"train_seconds": round(seconds, 2), "train_samples_per_s": round(len(train) * args.epochs / seconds, 2),
            **{f"val_{k}": round(v, 4) for k, v in classification_metrics(val.labels, predictions).items()}}


def hf_trainer(args, tokenizer, train, val, device, bf16: bool) -> dict:
    from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)

    set_seed(args.seed)

    class Encoded(torch.utils.data.Dataset):
        def __init__(self, split):
            self.encoded = tokenizer(split.texts, truncation=True, max_length=args.max_length)
            self.labels = split.labels

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {"input_ids": self.encoded["input_ids"][i], "attention_mask": self.encoded["attention_mask"][i],
                    "labels": self.labels[i]}

    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=3,
                                                               classifier_dropout=args.dropout)
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out, num_train_epochs=args.epochs, learning_rate=args.lr, weight_decay=args.weight_decay,
            warmup_steps=round(args.warmup_ratio * args.epochs * -(-len(train) // args.batch_size)),
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=128, max_grad_norm=1.0, lr_scheduler_type="linear", seed=args.seed,
            bf16=bf16, use_cpu=device.type == "cpu", save_strategy="no", eval_strategy="no",
            logging_strategy="no", report_to=[], disable_tqdm=True, dataloader_num_workers=0,
        )
        trainer = Trainer(model=model, args=targs, train_dataset=Encoded(train),
                          data_collator=DataCollatorWithPadding(tokenizer))
        result = trainer.train()
        predictions = np.argmax(trainer.predict(Encoded(val)).predictions, axis=1).tolist()
    seconds = result.metrics["train_runtime"]
    return {"train_seconds": round(seconds, 2), "train_samples_per_s": round(len(train) * args.epochs / seconds, 2),
            **{f"val_{k}": round(v, 4) for k, v in classification_metrics(val.labels, predictions).items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--train-samples", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default="data/processed")
    args = parser.parse_args()

    use_all_cpu_cores()
    device = resolve_device(args.device)
    tokenizer = load_tokenizer(args.model)
    train = stratified_subset(read_split(f"{args.data_dir}/train.jsonl"), args.train_samples, args.seed)
    val = read_split(f"{args.data_dir}/val.jsonl")
    # Ours uses bf16 autocast where the hardware runs it natively (CUDA; CPUs with AVX512-BF16/AMX),
    # as train_bert does. The Trainer is measured as users run it by default (fp32 on a CPU) and
    # with bf16=True, so the gain from precision and the gain from the loop are both visible.
    bf16 = device.type == "cuda" or cpu_has_native_bf16()
    results = {"ours": ours(args, tokenizer, train, val, device),
               "hf_trainer": hf_trainer(args, tokenizer, train, val, device, bf16=device.type == "cuda")}
    if bf16 and device.type == "cpu":
        results["hf_trainer_bf16"] = hf_trainer(args, tokenizer, train, val, device, bf16=True)
    ratio = lambda key: round(results["ours"]["train_samples_per_s"] / results[key]["train_samples_per_s"], 2)  # noqa: E731
    print(json.dumps({
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})",
        "torch": torch.__version__, "model": args.model, "train_samples": len(train), "val_samples": len(val),
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr,
        **results,
        "bf16": bf16,
        "speedup": ratio("hf_trainer"),
        **({"speedup_vs_hf_trainer_bf16": ratio("hf_trainer_bf16")} if "hf_trainer_bf16" in results else {}),
        "val_macro_recall_delta": round(results["ours"]["val_macro_recall"] - results["hf_trainer"]["val_macro_recall"], 4),
    }, indent=2))


if __name__ == "__main__":
    main()
