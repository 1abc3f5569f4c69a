"""Score a trained model directory (the LSTM's or a BERT export; loaded by src.models.loading).

    python -m src.evaluation --model-dir models/lstm --split test
    python -m src.evaluation --model-dir models/bert --split val    # the save_pretrained export
prints the test report as JSON (accuracy, macro_recall: TweetEval's metric, macro_f1, f1_pn,
per-class figures, confusion matrix). Nothing selects a model here.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from src.core.cli import pipeline_errors_exit, positive_int_option, print_lines
from src.core.errors import PipelineError
from src.core.runtime import (
    autocast_context,
    explain_out_of_memory,
    forward_logits,
    move_batch,
    resolve_device,
    use_all_cpu_cores,
)
from src.data.batching import LengthSortedSampler
from src.data.preprocess import read_split
from src.models.loading import TrainedModel, load_model
from src.scoring.metrics import detailed_metrics


def device_option(value: str, option: str = "--device"):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a torch.device (CUDA must be present); else a PipelineError."""
    try:
        if value != "auto" and torch.device(value).type not in {"cpu", "cuda"}:
            raise RuntimeError(value)
    except RuntimeError:
        raise PipelineError(f"{option} = {value!r}: expected auto, cpu, cuda or cuda:N") from None
    device = resolve_device(value, key=option)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise PipelineError(f"{option} = {value!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


@torch.inference_mode()
def predict_proba(
    trained: TrainedModel, texts: Sequence[str], batch_size: int = 128, device: str | torch.device = "auto"
) -> np.ndarray:
    """Class probabilities, one row per text in input order. Texts must already be normalised.

    Batches are formed from length-sorted texts and padded to their longest member, so little
    compute goes to padding; the rows are put back in input order at the end.
    """
    device = resolve_device(device)
    dataset = trained.encode(list(texts))
    sampler = LengthSortedSampler(dataset.lengths())
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, collate_fn=trained.collate, pin_memory=device.type == "cuda"
    )
    chunks = []
    for batch in loader:
        batch = move_batch(batch, device)
        with autocast_context(device, trained.mixed_precision):
            logits = forward_logits(trained.model, batch)
        chunks.append(torch.softmax(logits.float(), dim=-1).cpu())
    probabilities = np.empty((len(dataset), len(trained.label_names)), dtype=np.float32)
    if chunks:
        probabilities[sampler.order] = torch.cat(chunks).numpy()
    return probabilities


def score_texts(
    trained: TrainedModel,
    texts: Sequence[str],
    labels: Sequence[int],
    batch_size: int,
    device: str | torch.device = "auto",
) -> tuple[dict, list[int], np.ndarray]:
    """(test report + inference speed, predicted label ids, class probabilities), both in input order."""
    device = resolve_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    probabilities = predict_proba(trained, texts, batch_size, device)
    predictions = probabilities.argmax(axis=1).tolist()
    seconds = time.perf_counter() - started  # tokenisation included: what a user of the model waits for
    report = detailed_metrics(labels, predictions, trained.label_names)
    report["inference"] = {
        "tweets_per_s": round(len(texts) / seconds, 1),
        "seconds": round(seconds, 2),
        "batch_size": batch_size,
        "device": str(device),
    }
    return report, predictions, probabilities


def score_split(
    model_dir: str | os.PathLike, split_path: str | os.PathLike, batch_size: int = 256, device: str = "auto"
) -> dict:
    """The test report of a trained model on one processed split (``data/processed/*.jsonl``)."""
    trained = load_model(model_dir, device)
    split = read_split(split_path, trained.label_names)  # labels the model does not know: an error naming the line
    report, _, _ = score_texts(trained, split.texts, split.labels, batch_size, device)
    return {"split": str(split_path), **report}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="models/lstm")
    parser.add_argument("--split", default="test", help="train | val | test (a file under --data-dir)")
    parser.add_argument("--data-dir", default="data/processed")
    parser.add_argument("--batch-size", default="256")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    use_all_cpu_cores()
    with pipeline_errors_exit():
        batch_size, device = positive_int_option(args.batch_size, "--batch-size"), device_option(args.device)
        with explain_out_of_memory("--batch-size", batch_size):
            scores = score_split(args.model_dir, Path(args.data_dir) / f"{args.split}.jsonl", batch_size, device)
        print_lines([json.dumps(scores, indent=2)])


if __name__ == "__main__":
    main()
