"""Score a trained model directory (the LSTM's or a BERT export; loaded by src.models.loading).

    python -m src.evaluation --model-dir models/lstm --split test
    python -m src.evaluation --model-dir models/bert --split val    # the save_pretrained export
    python -m src.evaluation --model-dir models --data-dir data/raw --split val
    python -m src.evaluation --model-dir models --data-dir tweets.csv --split val --text-column tweet

prints the report as JSON (accuracy, macro_recall: TweetEval's metric, macro_f1, f1_pn, per-class
figures, confusion matrix). Nothing selects a model here.

--data-dir takes what the training command lines take (src/data/data_sources.py): the processed
directory of `dvc repro preprocess` (the default), a TweetEval-layout directory, or one CSV/TSV file,
cleaned as training cleans it. A CSV/TSV without a split column is split at random as training split
it: give the --validation-split, --test-split and --seed that training had (the defaults are the same).
Labels are read against the model's own class names.
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
from src.core.progress import progress
from src.core.runtime import (
    autocast_context,
    explain_out_of_memory,
    forward_logits,
    move_batch,
    resolve_device,
    use_all_cpu_cores,
)
from src.data.batching import LengthSortedSampler
from src.data.data_sources import COMMAND_LINE_NAMES, add_data_options, csv_options, read_labelled_split
from src.data.preprocess import SPLITS, read_split
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


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """``(texts, classes)`` probabilities on the CPU: softmax over one logit per class, or for a one-logit
    (two-class) model the sigmoid of its logit as class 1's and the rest as class 0's.

    In float64, so that the one-logit argmax is training's prediction (class 1 exactly when the logit
    is > 0: src.training.trainer.predicted_classes) down to logits of 1e-16, not a float32 tie at 0.5."""
    if logits.shape[-1] == 1:
        positive = torch.sigmoid(logits[:, 0].double())
        return torch.stack([1.0 - positive, positive], dim=1).cpu()
    return torch.softmax(logits.float(), dim=-1).double().cpu()


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
    # a bar on a terminal, a line a minute in a log (src.core.progress)
    for batch in progress(loader, f"scoring {len(dataset):,} texts"):
        batch = move_batch(batch, device)
        with autocast_context(device, trained.mixed_precision):
            logits = forward_logits(trained.model, batch)
        chunks.append(class_probabilities(logits))
    probabilities = np.empty((len(dataset), len(trained.label_names)), dtype=np.float64)
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
    model_dir: str | os.PathLike,
    data: str | os.PathLike = "data/processed",
    split: str = "test",
    batch_size: int = 256,
    device: str = "auto",
    csv_params: dict | None = None,
    seed: int = 42,
) -> dict:
    """The report of a trained model on one split of a data set in any layout the training command
    lines read (``data``: processed or TweetEval-layout directory, or a CSV/TSV file), or on one
    processed split file (``data``: a ``.jsonl`` file; ``split`` is then its name only)."""
    trained = load_model(model_dir, device)
    # labels the model does not know: an error naming the line and the model
    names = {
        **COMMAND_LINE_NAMES,
        "label_names": f"the classes of {model_dir}",
        "label_advice": "the model was trained for other classes",
    }
    if Path(data).suffix == ".jsonl":  # one processed split file
        rows, source = read_split(data, trained.label_names, names), Path(data)
    else:
        rows, source = read_labelled_split(data, split, trained.label_names, csv_params, seed, names)
    if not rows:
        raise PipelineError(f"{source}: the {split} split has no rows to score")
    report, _, _ = score_texts(trained, rows.texts, rows.labels, batch_size, device)
    return {"split": str(source) if source.suffix == ".jsonl" else f"{source}: {split}", **report}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m src.evaluation",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(  # --model: src.predict's spelling for the same thing
        "--model-dir",
        "--model",
        dest="model_dir",
        default="models/lstm",
        help="a trained model directory (default models/lstm)",
    )
    parser.add_argument("--split", default="test", choices=SPLITS, help="the split to score (default test)")
    parser.add_argument(
        "--data-dir",
        default="data/processed",
        help="processed or TweetEval-layout directory, or a .csv/.tsv file (default data/processed)",
    )
    parser.add_argument("--batch-size", default="256")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_data_options(parser, label_names=False)  # labels are read against the model's own class names
    args = parser.parse_args(argv)
    use_all_cpu_cores()
    with pipeline_errors_exit():
        batch_size, device = positive_int_option(args.batch_size, "--batch-size"), device_option(args.device)
        with explain_out_of_memory("--batch-size", batch_size):
            scores = score_split(
                args.model_dir, args.data_dir, args.split, batch_size, device, csv_options(args), args.seed
            )
        print_lines([json.dumps(scores, indent=2)])


if __name__ == "__main__":
    main()
