"""Data-parallel training throughput: the shared engine under torchrun with 1, 2, ... processes.

Prints JSON: per model (BERT encoder, LSTM) and process count, training samples/s, seconds per
optimizer step, and what each step all-reduces (trainable parameters x 4 bytes of fp32 gradient).

    HF_HOME=../shared/hf HF_HUB_OFFLINE=1 python -m benchmarks.ddp_throughput \
        --model sentence-transformers/all-MiniLM-L6-v2 --train-samples 256 --nproc 1 2

Each configuration runs `torchrun --standalone --nproc-per-node=N -m benchmarks.ddp_throughput
--worker ...`: the same global batch (--batch-size) at every N, split over the ranks as train_bert
and train_lstm split it. Reads data/processed (and data/vocab for the LSTM): run
`dvc repro build_vocab` first. Epoch 1 is a warm-up; the figures are from the epochs after it.
On a CPU, 2 processes share the cores one process used (OMP_NUM_THREADS=1 each): this shows that
it works and what the gradient exchange costs, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def worker(args) -> None:
    import numpy as np
    import torch.distributed as dist

    from src.core.runtime import resolve_device, seed_everything, use_all_cpu_cores
    from src.data.preprocess import read_split, stratified_subset
    from src.data.vocab import Vocabulary
    from src.models import training
    from src.models.bert_data import TokenizedTweets, make_bert_loader
    from src.models.bert_model import BertSentimentClassifier, load_tokenizer
    from src.models.lstm_data import make_loader
    from src.models.lstm_model import LSTMClassifier
    from src.training import Trainer, create_trainer, distributed

    use_all_cpu_cores()
    with distributed.process_group(resolve_device(args.device)) as device:
        seed_everything(args.seed)
        train = stratified_subset(read_split(Path(args.data_dir) / "train.jsonl"), args.train_samples, args.seed)
        with tempfile.TemporaryDirectory() as checkpoints:
            if args.kind == "bert":
                tokenizer = load_tokenizer(args.model)
                loader = make_bert_loader(
                    TokenizedTweets(train.texts, train.labels, tokenizer, args.max_length),
                    args.batch_size,
                    shuffle=True,
                    seed=args.seed,
                    pin_memory=device.type == "cuda",
                )
                model = BertSentimentClassifier(args.model, 3, 0.1)
                optimizer = training.build_optimizer(model, 5e-5, 0.01, device)
                scheduler = training.build_scheduler(optimizer, args.epochs * len(loader), 0.1)
                trainer = Trainer(
                    model,
                    loader,
                    None,
                    optimizer,
                    None,
                    scheduler,
                    1.0,
                    checkpoints,
                    scheduler_interval="step",
                    device=device,
                    progress=False,
                    mixed_precision=args.mixed_precision,
                )
            else:
                vocab = Vocabulary.load(Path(args.vocab_dir) / "vocab.json")
                loader = make_loader(train.texts, train.labels, vocab, args.batch_size, shuffle=True, seed=args.seed)
                model = LSTMClassifier(len(vocab), 25, 128, 3, 1, 0.5, True)
                model.load_pretrained_embeddings(np.load(Path(args.vocab_dir) / "embeddings.npy"))
                trainer = create_trainer(
                    model, loader, None, learning_rate=2e-3, checkpoint_dir=checkpoints, device=device, progress=False
                )
            seconds = []
            for _ in range(args.epochs):
                if distributed.is_distributed():
                    dist.barrier()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                started = time.perf_counter()
                trainer.train_epoch()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                seconds.append(time.perf_counter() - started)
                trainer.epoch += 1
        timed = seconds[1:] or seconds  # epoch 1 warms up (allocator, first-call kernels)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        # every rank timed the same global steps; the slowest rank sets the pace
        slowest = max(distributed.gather_objects(sum(timed)))
        allreduce_s = None
        if distributed.is_distributed():  # one step's gradient volume in one piece, as a lower bound
            flat = torch.zeros(trainable, device=device)
            rounds = []
            for _ in range(4):
                dist.barrier()
                started = time.perf_counter()
                dist.all_reduce(flat)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                rounds.append(time.perf_counter() - started)
            allreduce_s = round(float(np.median(rounds[1:])), 4)
        if distributed.is_main_process():
            result = {
                "model": args.model if args.kind == "bert" else "lstm (BiLSTM 128, GloVe 25d)",
                "processes": distributed.world_size(),
                "device": str(device),
                "global_batch": args.batch_size,
                "train_samples": len(train),
                "steps_per_epoch": len(loader),
                "timed_epochs": len(timed),
                "train_samples_per_s": round(len(train) * len(timed) / slowest, 2),
                "seconds_per_step": round(slowest / (len(loader) * len(timed)), 4),
                "trainable_parameters": trainable,
                "allreduce_mb_per_step": round(trainable * 4 / 1e6, 1) if distributed.world_size() > 1 else 0.0,
                "allreduce_seconds_measured": allreduce_s,
                "epoch_seconds": [round(s, 2) for s in seconds],
            }
            Path(args.out).write_text(json.dumps(result))


def launch(args, kind: str, nproc: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "benchmarks.ddp_throughput",
            "--worker",
            "--kind",
            kind,
            "--out",
            str(out),
            *[
                f"--{k.replace('_', '-')}={v}"
                for k, v in vars(args).items()
                if k
                in (
                    "model",
                    "train_samples",
                    "epochs",
                    "batch_size",
                    "max_length",
                    "seed",
                    "device",
                    "data_dir",
                    "vocab_dir",
                )
            ],
        ]
        if kind == "lstm":  # the last --batch-size / --train-samples wins
            command += [f"--batch-size={args.lstm_batch_size}", f"--train-samples={args.lstm_train_samples}"]
        if args.mixed_precision:
            command.append("--mixed-precision")
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--train-samples", type=int, default=384)
    parser.add_argument("--epochs", type=int, default=3, help="the first is a warm-up")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch (BERT)")
    parser.add_argument("--lstm-batch-size", type=int, default=128, help="global batch (LSTM)")
    parser.add_argument("--lstm-train-samples", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--data-dir", default="data/processed")
    parser.add_argument("--vocab-dir", default="data/vocab")
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["bert", "lstm"], choices=["bert", "lstm"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kind", default="bert", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    runs = [launch(args, kind, nproc) for kind in args.models for nproc in args.nproc]
    for kind in args.models:  # speed-up against the first process count, per model
        own = [r for r in runs if (r["model"] == args.model) == (kind == "bert")]
        for run in own:
            run[f"speedup_vs_{own[0]['processes']}_process"] = round(
                run["train_samples_per_s"] / own[0]["train_samples_per_s"], 2
            )
    print(
        json.dumps(
            {
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "omp_num_threads_per_process": os.environ.get("OMP_NUM_THREADS", "1"),
                },
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
